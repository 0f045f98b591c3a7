"""COMA on MPE simple spread against fixed policies evaluated on the same episodes.

    python experiments/pettingzoo/spread_curves.py RUN_DIR [RUN_DIR ...] \
        [--png curves.png] [--json results.json]

For every run directory (``metrics.jsonl``, ``.hydra/config.yaml``) this replays the
run's evaluations with two fixed policies on exactly the same episodes: the eval env
is built from the run's env config with ``train.eval_episodes`` envs and reset with the
seed the trainer drew for that evaluation (the k-th draw of
``numpy.random.default_rng(seed + 7).integers(2**31)``, as ``marl.train.Trainer``
does), so the start positions match episode for episode. The policies act through
:func:`marl.core.runner.evaluate` like the learned one:

* ``random``: uniform over the allowed actions (its own fixed torch seed);
* ``no-op``: always action 0 (mpe2's "no action": the agents stay where they start);
* ``scripted``: agent i heads for landmark i and stops there (:class:`GoToOwnLandmark`),
  a hand-written yardstick, not an optimum.

Prints one row per run (final COMA greedy return, env steps, wall time, both baselines
on the final evaluation's episodes) and the mean over runs; draws the learning curves
with the baselines.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import Tensor

from marl.analysis.runs import read_jsonl
from marl.core.runner import evaluate
from marl.envs import ENV_CONFIGS, make_vec_env

TRAINER_EVAL_SEED_OFFSET = 7  # marl.train.Trainer: eval_rng = default_rng(seed + 7)


class RandomPolicy:
    """Uniform over the allowed actions (a :class:`marl.core.runner.Policy`)."""

    hidden_dim = 0

    def __init__(self, seed: int = 0):
        self.gen = torch.Generator().manual_seed(seed)

    def act(self, obs: Tensor, prev_actions: Tensor, first: Tensor, action_mask: Tensor,
            h: Tensor, greedy: bool = False) -> tuple[Tensor, Tensor]:
        b, n, a = action_mask.shape
        probs = action_mask.reshape(b * n, a).float()
        acts = torch.multinomial(probs, 1, generator=self.gen).reshape(b, n)
        return acts, h


class ConstantPolicy:
    """Always the same action (0 = mpe2's no-op)."""

    hidden_dim = 0

    def __init__(self, action: int = 0):
        self.action = action

    def act(self, obs: Tensor, prev_actions: Tensor, first: Tensor, action_mask: Tensor,
            h: Tensor, greedy: bool = False) -> tuple[Tensor, Tensor]:
        return torch.full(action_mask.shape[:2], self.action, dtype=torch.long), h


class GoToOwnLandmark:
    """A hand-written reference: agent i heads for landmark i along the larger axis of
    the offset (velocity-damped), and stops (no-op) within 0.05 of it. Reads simple
    spread's observation layout: own velocity [0:2], own position [2:4], landmark
    offsets [4:4 + 2N]. Not optimal (the assignment is fixed, collisions are ignored):
    a yardstick for "agents that go somewhere sensible"."""

    hidden_dim = 0

    def act(self, obs: Tensor, prev_actions: Tensor, first: Tensor, action_mask: Tensor,
            h: Tensor, greedy: bool = False) -> tuple[Tensor, Tensor]:
        b, n = obs.shape[:2]
        acts = torch.zeros(b, n, dtype=torch.long)
        for i in range(n):
            rel = obs[:, i, 4 + 2 * i:6 + 2 * i] - 0.5 * obs[:, i, 0:2]
            dx, dy = rel[:, 0], rel[:, 1]
            move = torch.where(dx.abs() >= dy.abs(), torch.where(dx > 0, 2, 1),
                               torch.where(dy > 0, 4, 3))  # mpe2: 1 left 2 right 3 down 4 up
            acts[:, i] = torch.where(rel.norm(dim=-1) < 0.05, 0, move)
        return acts, h


def load_run(run_dir: Path) -> dict:
    cfg = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    rows = read_jsonl(run_dir / "metrics.jsonl")
    evals = [(r["env_steps"], r["eval/return_mean"]) for r in rows if "eval/return_mean" in r]
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"dir": str(run_dir), "cfg": cfg, "seed": int(cfg["seed"]), "evals": evals,
            "summary": summary}


def eval_seeds(seed: int, count: int) -> list[int]:
    rng = np.random.default_rng(seed + TRAINER_EVAL_SEED_OFFSET)
    return [int(rng.integers(2**31)) for _ in range(count)]


def baseline_returns(run: dict) -> dict[str, list[float]]:
    """Mean return of each fixed policy at each of the run's evaluations."""
    env_cfg = dict(run["cfg"]["env"])
    env = make_vec_env(ENV_CONFIGS[env_cfg["name"]](**env_cfg),
                       int(run["cfg"]["train"]["eval_episodes"]), seed=0)
    policies = {"random": RandomPolicy(0), "no-op": ConstantPolicy(0),
                "scripted": GoToOwnLandmark()}
    out: dict[str, list[float]] = {k: [] for k in policies}
    for s in eval_seeds(run["seed"], len(run["evals"])):
        for name, pol in policies.items():
            out[name].append(float(evaluate(env, pol, 0, seed=s)["return"].mean()))
    env.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--png", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    runs = [load_run(d) for d in args.runs]
    for run in runs:
        run["baselines"] = baseline_returns(run)
    names = ("random", "no-op", "scripted")
    print("| seed | env steps | wall time | COMA final eval return | "
          + " | ".join(names) + " |")
    print("|---|---|---|---|" + "---|" * len(names))
    finals: dict[str, list[float]] = {k: [] for k in ("coma", *names)}
    for run in runs:
        s = run["summary"]
        finals["coma"].append(run["evals"][-1][1])
        for k in names:
            finals[k].append(run["baselines"][k][-1])
        print(f"| {run['seed']} | {s['env_steps']:,} | {s['wall_time_s'] / 60:.1f} min | "
              + " | ".join(f"{finals[k][-1]:.2f}" for k in ("coma", *names)) + " |")
    print(f"| mean +- std over {len(runs)} | | | "
          + " | ".join(f"{np.mean(v):.2f} +- {np.std(v):.2f}" for v in finals.values()) + " |")
    if args.json:
        args.json.write_text(json.dumps(
            [{k: v for k, v in r.items() if k != "cfg"} for r in runs], indent=1) + "\n")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.2))
        for i, run in enumerate(runs):
            x = [e[0] for e in run["evals"]]
            ax.plot(x, [e[1] for e in run["evals"]], color="C0", alpha=0.9, lw=1.4,
                    label="COMA (greedy), one line per seed" if i == 0 else None)
            ax.plot(x, run["baselines"]["random"], color="C3", ls="--", lw=1,
                    label="uniform random, same episodes" if i == 0 else None)
            ax.plot(x, run["baselines"]["no-op"], color="C7", ls=":", lw=1.2,
                    label="always no-op, same episodes" if i == 0 else None)
            ax.plot(x, run["baselines"]["scripted"], color="C2", ls="-.", lw=1,
                    label="scripted: agent i -> landmark i" if i == 0 else None)
        ax.set_xlabel("env steps")
        ax.set_ylabel(f"eval return (mean of {runs[0]['cfg']['train']['eval_episodes']} "
                      "episodes)")
        ax.set_title(f"COMA on mpe2 simple_spread (N=3), {len(runs)} seeds")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        fig.savefig(args.png, dpi=110)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
