"""CartPole results: per seed, the final greedy evaluation (summary.json), when the greedy
return first reached 475, env steps and wall time; optionally a figure of the curves.

    python experiments/classics/cartpole_table.py multirun/classics/cartpole [--png out.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from marl.analysis.runs import read_jsonl

TARGET = 475.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="+", type=Path)
    ap.add_argument("--png", type=Path, default=None)
    args = ap.parse_args()
    runs = []
    for root in args.roots:
        for path in sorted(root.rglob("summary.json")):
            summary = json.loads(path.read_text())
            rows = read_jsonl(path.parent / "metrics.jsonl")
            evals = [(r["env_steps"], r["eval/return_mean"], r["perf/wall_time_s"])
                     for r in rows if "eval/return_mean" in r]
            first = next(((s, w) for s, ret, w in evals if ret >= TARGET), (None, None))
            runs.append((summary, evals, first))
    print("| seed | final greedy return (100 episodes) | env steps | wall time s "
          "| first eval >= 475: env steps | at wall s |")
    print("|---|---|---|---|---|---|")
    for summary, _, (steps, wall) in sorted(runs, key=lambda r: r[0]["seed"]):
        print(f"| {summary['seed']} | {summary['eval/return_mean']:.1f} | {summary['env_steps']:,} "
              f"| {summary['wall_time_s']:.0f} | {steps:,} | {wall:.0f} |" if steps is not None else
              f"| {summary['seed']} | {summary['eval/return_mean']:.1f} | {summary['env_steps']:,} "
              f"| {summary['wall_time_s']:.0f} | never | - |")
    ok = sum(r[0]["eval/return_mean"] >= TARGET and r[0]["wall_time_s"] <= 600 for r in runs)
    print(f"{ok}/{len(runs)} seeds: final greedy return >= {TARGET} within 10 minutes")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        for summary, evals, _ in sorted(runs, key=lambda r: r[0]["seed"]):
            x, y, _ = zip(*evals, strict=True)
            ax.plot(x, y, marker="o", ms=3, label=f"seed {summary['seed']}")
        ax.axhline(TARGET, color="k", ls="--", lw=0.8)
        ax.set(xlabel="env steps", ylabel="greedy eval return (100 episodes)",
               title="coma_cartpole: COMA with one agent on CartPole-v1", ylim=(0, 520))
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(args.png, dpi=110)


if __name__ == "__main__":
    main()
