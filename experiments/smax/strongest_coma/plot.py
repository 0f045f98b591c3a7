"""Greedy win-rate curves of the runs on the strongest-COMA page, one panel per map.

``python experiments/smax/strongest_coma/plot.py OUT.png LABEL=RUN_DIR [LABEL=RUN_DIR ...]``
reads each run's ``metrics.jsonl`` (its ``eval/win_rate`` rows) and draws one line per
run, coloured by label (runs sharing a label are seeds of one row).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def curve(run_dir: Path) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        d = json.loads(line)
        if "eval/win_rate" in d:
            xs.append(d["env_steps"] / 1e6)
            ys.append(d["eval/win_rate"])
    return xs, ys


def main() -> None:
    out, pairs = Path(sys.argv[1]), [a.split("=", 1) for a in sys.argv[2:]]
    labels = list(dict.fromkeys(label for label, _ in pairs))
    colours = {label: f"C{i}" for i, label in enumerate(labels)}
    fig, ax = plt.subplots(figsize=(7, 4))
    seen: set[str] = set()
    for label, run in pairs:
        xs, ys = curve(Path(run))
        ax.plot(xs, ys, color=colours[label], marker=".",
                label=None if label in seen else label)
        seen.add(label)
    ax.set_xlabel("env steps (M)")
    ax.set_ylabel("greedy win rate (128 episodes)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
