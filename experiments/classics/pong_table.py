"""Pong runs: training-loop throughput and where the returns got to.

    python experiments/classics/pong_table.py outputs/classics_pong

For every run directory below the given folders (``metrics.jsonl``, ``.hydra``): env
steps, wall time, the training loop's env steps/s and emulator frames/s (the mean of the
logged ``perf/steps_per_s`` over rows without an evaluation, times the frame skip), the
mean training return of the last 10 logged rows, and every greedy evaluation.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from marl.analysis.runs import read_jsonl

FRAMESKIP = {"standard": 4, "karpathy": 3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="+", type=Path)
    args = ap.parse_args()
    print("| run | env steps | frames | wall h | env steps/s | frames/s | train return "
          "(last 10 rows) | greedy evals (env steps: return) |")
    print("|---|---|---|---|---|---|---|---|")
    for root in args.roots:
        for metrics in sorted(root.rglob("metrics.jsonl")):
            run = metrics.parent
            cfg = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
            env = cfg["env"]
            skip = env.get("frameskip") or FRAMESKIP[env["mode"]]
            rows = read_jsonl(metrics)
            loop = [r["perf/steps_per_s"] for r in rows
                    if "perf/steps_per_s" in r and "eval/return_mean" not in r]
            sps = sum(loop) / max(len(loop), 1)
            rets = [r["train/return"] for r in rows if r.get("train/return") is not None][-10:]
            evals = ", ".join(f"{r['env_steps']:,}: {r['eval/return_mean']:+.1f}"
                              for r in rows if "eval/return_mean" in r)
            steps = rows[-1]["env_steps"]
            wall = max(r.get("perf/wall_time_s", 0.0) for r in rows) / 3600
            train = f"{sum(rets) / len(rets):+.1f}" if rets else "-"
            print(f"| {cfg['name']} s{cfg['seed']} | {steps:,} | {steps * skip:,} | {wall:.2f} "
                  f"| {sps:.0f} | {sps * skip:.0f} | {train} | {evals} |")


if __name__ == "__main__":
    main()
