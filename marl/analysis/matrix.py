"""Train on a matrix game (climbing, penalty) and read the joint action it converged to.

The observation of a matrix game is a constant, so each agent's greedy action is the
argmax of its actor's logits on it, and the greedy joint action is the cell every greedy
evaluation episode plays.
"""

from __future__ import annotations

import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

QUIET = ["logger.progress=false", "logger.plots=[]", "logger.wandb.mode=disabled"]


def greedy_joint_action(trainer: Any) -> tuple[list[int], torch.Tensor]:
    """(each agent's greedy action, softmax ``[N, A]``) of a trained matrix-game actor."""
    env, actor = trainer.env, trainer.learner.actor
    n, a = env.spec.n_agents, env.spec.n_actions
    with torch.no_grad():
        obs = torch.from_numpy(env.buf.obs[:1].copy())  # the constant observation
        prev = torch.full((1, n), a, dtype=torch.long)  # episode start: no previous action
        logits, _ = actor(obs, prev, actor.initial_hidden(1))
    probs = torch.softmax(logits[0], -1)
    return probs.argmax(-1).tolist(), probs


def train_one(experiment: str, seed: int, out: Path, overrides: list[str]) -> dict[str, Any]:
    """Train ``+experiment=<experiment> seed=<seed> <overrides>`` with the real
    ``marl.train.Trainer`` into ``out/<experiment>_s<seed>``; the converged joint action,
    its payoff and whether it is optimal."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from marl.build import register_configs
    from marl.config import to_config
    from marl.train import CONF_DIR, Trainer

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        dcfg = compose(config_name="config", overrides=[
            f"+experiment={experiment}", f"seed={seed}", *QUIET, *overrides])
    run_dir = out / f"{experiment}_s{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(dcfg))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = Trainer(to_config(dcfg), run_dir, OmegaConf.to_container(dcfg, resolve=True))
        summary = trainer.run()
    payoff = trainer.env.payoff  # MatrixGameCore: [3, 3]
    greedy, probs = greedy_joint_action(trainer)
    joint = greedy[0] * trainer.env.spec.n_actions + greedy[1]
    eval_joint = summary.get("eval/joint_action_mean")
    if eval_joint is not None and abs(eval_joint - joint) > 1e-6:
        print(f"warning: {experiment} seed {seed}: greedy joint action {joint} but final "
              f"eval joint_action_mean {eval_joint}", file=sys.stderr)
    value = float(payoff[greedy[0], greedy[1]])
    return {
        "experiment": experiment, "seed": seed, "greedy": greedy, "payoff": value,
        "probs": probs.tolist(), "eval_return": summary.get("eval/return_mean"),
        "eval_joint_action_mean": eval_joint, "env_steps": summary["env_steps"],
        "wall_time_s": summary["wall_time_s"], "optimal": bool(value == payoff.max()),
    }
