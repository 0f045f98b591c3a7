"""Learning curves of the matrix-game study: greedy evaluation return against env steps,
one thin line per seed and the mean over seeds, one panel per game.

    python experiments/optimism/plot_matrix.py --runs runs/optimism/matrix \
        --out experiments/optimism/matrix_curves.png climbing_optimistic climbing_plain_entropy ...

Reads ``<runs>/<study>/*/metrics.jsonl`` (the run directories ``matrix_study.py`` wrote);
the panel is the study name's first word (climbing, penalty100, ...).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def curve(run: Path) -> tuple[np.ndarray, np.ndarray]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x]
    pts = [(r["env_steps"], r["eval/return_mean"]) for r in rows if "eval/return_mean" in r]
    return np.array([p[0] for p in pts]), np.array([p[1] for p in pts])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("studies", nargs="+")
    p.add_argument("--runs", type=Path, default=Path("runs/optimism/matrix"))
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    games = list(dict.fromkeys(s.split("_")[0] for s in args.studies))
    fig, axes = plt.subplots(1, len(games), figsize=(5 * len(games), 3.6), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, study in enumerate(args.studies):
        ax = axes[0, games.index(study.split("_")[0])]
        runs = sorted(d for d in (args.runs / study).glob("*") if (d / "summary.json").exists())
        curves = [curve(r) for r in runs]
        if not curves:
            continue
        c = colours[i % len(colours)]
        for x, y in curves:
            ax.plot(x, y, color=c, alpha=0.2, lw=0.8)
        n = min(len(x) for x, _ in curves)
        mean = np.mean([y[:n] for _, y in curves], axis=0)
        ax.plot(curves[0][0][:n], mean, color=c, lw=2,
                label=f"{study.split('_', 1)[1]} ({len(curves)} seeds)")
    for ax, game in zip(axes[0], games, strict=True):
        ax.set_title(game)
        ax.set_xlabel("env steps")
        ax.set_ylabel("greedy eval return")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
