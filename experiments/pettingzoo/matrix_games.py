"""Which joint action COMA converges to on the climbing and penalty games, over seeds.

    python experiments/pettingzoo/matrix_games.py coma_climbing coma_penalty \
        --seeds 10 --out runs/matrix [--json results.json] [override ...]

For each experiment and seed 0..S-1 this trains with the real ``marl.train.Trainer``
(one run after the other, in this process; run directories under ``--out``), then reads
the converged policy directly: the observation is a constant, so each agent's greedy
action is the argmax of its actor's logits on it, and the greedy joint action is the
cell every greedy evaluation episode plays (checked against the final evaluation's
``eval/joint_action_mean``, which is ``3 * a0 + a1`` when every episode plays the same
cell). Prints one row per seed (greedy joint action, its payoff, each agent's softmax
probability of its greedy action) and the count of seeds per joint action.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import torch

from marl.analysis.matrix import train_one


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiments", nargs="+", help="experiment names, then Hydra overrides")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--out", type=Path, default=Path("runs/matrix"))
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    exps = [e for e in args.experiments if "=" not in e]
    overrides = [e for e in args.experiments if "=" in e]
    torch.set_num_threads(1)
    results = []
    for exp in exps:
        rows = [train_one(exp, s, args.out, overrides) for s in range(args.seeds)]
        results += rows
        print(f"\n{exp} ({rows[0]['env_steps']:,} env steps per seed, "
              f"{sum(r['wall_time_s'] for r in rows) / len(rows):.0f} s per run)")
        print("| seed | greedy joint action | payoff | pi_0(a0) | pi_1(a1) |")
        print("|---|---|---|---|---|")
        for r in rows:
            a0, a1 = r["greedy"]
            print(f"| {r['seed']} | ({a0}, {a1}) | {r['payoff']:g} | "
                  f"{r['probs'][0][a0]:.3f} | {r['probs'][1][a1]:.3f} |")
        counts = Counter((tuple(r["greedy"]), r["payoff"]) for r in rows)
        print("\n| joint action | payoff | seeds |")
        print("|---|---|---|")
        for (cell, pay), c in counts.most_common():
            print(f"| {cell} | {pay:g} | {c} / {len(rows)} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
