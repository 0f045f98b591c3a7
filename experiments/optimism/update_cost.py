"""The price of the others' best reply per update: seconds per learner update on one
real fragment, with ``algo.optimistic_others`` off and on (same fragment, same initial
networks), alternating to share the machine's load evenly.

    python experiments/optimism/update_cost.py coma_boxpush [--updates 30] [override ...]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import time

import torch

from marl.algos.coma.learner import Learner
from marl.build import build, compose_config


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("experiment")
    p.add_argument("--updates", type=int, default=30)
    p.add_argument("--w", type=float, default=0.9)
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg = compose_config([f"+experiment={args.experiment}", *args.overrides])
    env, learner, runner = build(cfg, cfg.train.num_envs)
    ro = runner.collect(learner.policy)
    on = Learner(env.spec, dataclasses.replace(cfg.algo, optimistic_others=args.w))
    on.load_state_dict(copy.deepcopy(learner.state_dict()))
    learners = {"off": learner, f"w={args.w}": on}
    times = {k: 0.0 for k in learners}
    for _ in range(args.updates):
        for k, ln in learners.items():
            t0 = time.perf_counter()
            ln.update(ro)
            times[k] += time.perf_counter() - t0
    base = times["off"]
    for k, t in times.items():
        print(f"{args.experiment} {k}: {1e3 * t / args.updates:.1f} ms per update "
              f"({t / base:.2f}x), fragment {tuple(ro.actions.shape)}")


if __name__ == "__main__":
    main()
