"""Greedy win-rate curves of the strongest-COMA page (2s3z).

``python experiments/smax/strongest_coma/plot.py collect curves.json LABEL=RUN_DIR ...``
reads each run's ``metrics.jsonl`` (its ``eval/win_rate`` rows) into ``curves.json``
(label -> one curve per run, ``[[env_steps, win], ...]``), the page's committed record.

``python experiments/smax/strongest_coma/plot.py draw curves.json OUT.png
[--ablation experiments/smax/ablation/results.json]`` draws them, one colour per label,
with the SMAX table's runs of the same map (mappo, coma, central_v) dashed beside them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from marl.analysis.curves import colour, figure, save

ABLATION_ROWS = ("mappo", "coma", "central_v")


def read_curve(run_dir: Path) -> list[list[float]]:
    out = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        d = json.loads(line)
        if "eval/win_rate" in d:
            out.append([d["env_steps"], d["eval/win_rate"]])
    return out


def collect(out: Path, pairs: list[str]) -> None:
    curves: dict[str, list] = {}
    for pair in pairs:
        label, run = pair.split("=", 1)
        curves.setdefault(label, []).append(read_curve(Path(run)))
    out.write_text(json.dumps(curves, indent=1))


def draw(curves_file: Path, out: Path, ablation: Path | None) -> None:
    curves = json.loads(curves_file.read_text())
    rows: dict[str, list] = {}
    if ablation is not None:
        for run in json.loads(ablation.read_text())["runs"]:
            if run["name"] == "coma_smax_2s3z" and run["algo"] in ABLATION_ROWS:
                rows.setdefault(f"{run['algo']} (SMAX table, 128 envs)", []).append(
                    [[c[0], c[1]] for c in run["curve"]])
    fig, axes = figure()
    ax = axes[0]
    for i, (label, runs) in enumerate([*curves.items(), *rows.items()]):
        style = "-" if label in curves else "--"
        for j, c in enumerate(runs):
            ax.plot([p[0] / 1e6 for p in c], [p[1] for p in c], style, marker=".",
                    color=colour(i), label=label if j == 0 else None)
    ax.set_xlabel("env steps (M)")
    ax.set_ylabel("greedy win rate (128 episodes)")
    ax.set_title("SMAX 2s3z")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save(fig, out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("out", type=Path)
    c.add_argument("pairs", nargs="+")
    d = sub.add_parser("draw")
    d.add_argument("curves", type=Path)
    d.add_argument("out", type=Path)
    d.add_argument("--ablation", type=Path, default=None)
    args = p.parse_args()
    if args.cmd == "collect":
        collect(args.out, args.pairs)
    else:
        draw(args.curves, args.out, args.ablation)


if __name__ == "__main__":
    main()
