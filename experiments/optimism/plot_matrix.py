"""Learning curves of the matrix-game study: greedy evaluation return against env steps,
one thin line per seed and the mean over seeds, one panel per game.

    python experiments/optimism/plot_matrix.py --runs runs/optimism/matrix \
        --out experiments/optimism/matrix_curves.png climbing_optimistic climbing_plain_entropy ...

Reads ``<runs>/<study>/*/metrics.jsonl`` (the run directories ``matrix_study.py`` wrote);
the panel is the study name's first word (climbing, penalty100, ...).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from marl.analysis.curves import colour, figure, runs_and_mean, save
from marl.analysis.runs import eval_curve


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("studies", nargs="+")
    p.add_argument("--runs", type=Path, default=Path("runs/optimism/matrix"))
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    games = list(dict.fromkeys(s.split("_")[0] for s in args.studies))
    fig, axes = figure(len(games), (5 * len(games), 3.6))
    for i, study in enumerate(args.studies):
        ax = axes[games.index(study.split("_")[0])]
        runs = sorted(d for d in (args.runs / study).glob("*") if (d / "summary.json").exists())
        curves = [eval_curve(r / "metrics.jsonl", "eval/return_mean") for r in runs]
        if curves:
            runs_and_mean(ax, curves, f"{study.split('_', 1)[1]} ({len(curves)} seeds)",
                          colour(i))
    for ax, game in zip(axes, games, strict=True):
        ax.set_title(game)
        ax.set_xlabel("env steps")
        ax.set_ylabel("greedy eval return")
        ax.legend(fontsize=8)
    save(fig, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
