"""Greedy-evaluation success against env steps for groups of runs, one line per run.

    python experiments/boxpush/plot.py --out curves.png \
        --group "coma_boxpush" runs/default_s0 runs/default_s1 ... \
        --group "strict, from scratch" runs/strict_s0 \
        [--table]

Reads each run's ``metrics.jsonl`` (``eval/success_rate`` rows) and ``summary.json``;
``--table`` prints a Markdown table: final success, env steps to 95%, wall time.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from marl.analysis.curves import colour, figure, save
from marl.analysis.runs import eval_curve


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--group", nargs="+", action="append", required=True,
                   metavar=("LABEL", "RUN_DIR"), help="a label then its run directories")
    p.add_argument("--table", action="store_true")
    args = p.parse_args()
    fig, (ax,) = figure()
    print("| group | run | final greedy success | env steps to 95% | env steps | wall s |")
    print("|---|---|---|---|---|---|")
    for i, (label, *runs) in enumerate(args.group):
        for j, run in enumerate(map(Path, runs)):
            x, y = eval_curve(run / "metrics.jsonl", "eval/success_rate")
            ax.plot(x, y, color=colour(i), alpha=0.8, lw=1.2,
                    label=label if j == 0 else None)
            if args.table:
                s = json.loads((run / "summary.json").read_text())
                first = next((a for a, b in zip(x, y, strict=True) if b >= 0.95), None)
                print(f"| {label} | {run.name} | {s['eval/success_rate']:.3f} | "
                      f"{'not reached' if first is None else f'{first:,}'} | "
                      f"{s['env_steps']:,} | {s['wall_time_s']:.0f} |")
    ax.set(xlabel="env steps", ylabel="greedy success rate (200 episodes)", ylim=(-0.02, 1.02))
    ax.axhline(0.95, color="grey", ls=":", lw=1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    save(fig, args.out)


if __name__ == "__main__":
    main()
