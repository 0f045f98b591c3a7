"""The exact value of each Dec-POMDP run's final greedy joint policy, beside the
problem's optimum, best open-loop plan and uniform-random value.

For every run directory given (``env=dpomdp``), the newest checkpoint's actor is read
as per-agent tables history -> greedy action (``policy_from_actor``) and the joint policy
is evaluated exactly from the model (``policy_value``: every joint observation
history). Prints one JSON line per run and, with ``--out``, writes them as a JSON list.

    python experiments/coordination/exact_values.py runs/coordination/dpomdp/* --out F
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from marl.build import build
from marl.envs.dpomdp.config import resolve_problem
from marl.envs.dpomdp.evaluate import actor_from_policy, policy_from_actor, policy_value
from marl.envs.dpomdp.parser import load_cached
from marl.envs.dpomdp.values import score
from marl.evaluate import load_run_config
from marl.io.checkpoint import latest_checkpoint, load_checkpoint


def exact(run_dir: Path) -> dict:
    cfg = load_run_config(run_dir)
    _, path = resolve_problem(cfg.env.problem)
    model = load_cached(path)
    env, learner, _ = build(cfg, 1, seed=0)
    ckpt = latest_checkpoint(run_dir / "checkpoints")
    state = load_checkpoint(ckpt)
    learner.load_networks(state["learner"])
    actor = actor_from_policy(learner.policy, model.n_agents, env.spec.n_actions)
    value = policy_value(model, policy_from_actor(model, cfg.env.horizon, actor),
                         cfg.env.horizon)
    return {"run": str(run_dir), "problem": cfg.env.problem, "horizon": cfg.env.horizon,
            "seed": cfg.seed, "env_steps": int(state["env_steps"]),
            **score(cfg.env.problem, cfg.env.horizon, value)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    rows = []
    for run in args.runs:
        if not (run / "checkpoints").is_dir():
            continue
        rows.append(exact(run))
        print(json.dumps(rows[-1]))
    if not rows:
        print("error: no run directory with checkpoints among the paths", file=sys.stderr)
        return 2
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
