"""Smoke runs of the real Trainer on every shipped PettingZoo / matrix-game config.

Each run composes the config as ``python -m marl.train`` does, shrinks it (2 envs, short
fragments, a few dozen env steps, one evaluation episode, short episodes for the slow
pixel envs) and checks the summary it writes. Plus: bad ``env.*`` values reach the user
of ``python -m marl.train`` as one ``error:`` line, not a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from conftest import compose
from omegaconf import OmegaConf

from marl.config import to_config
from marl.io.checkpoint import list_checkpoints
from marl.train import Trainer

ROOT = Path(__file__).resolve().parent.parent

TINY = [
    "train.num_envs=2",
    "train.fragment_len=4",
    "train.total_env_steps=16",
    "train.eval_every_env_steps=8",
    "train.eval_episodes=1",
    "train.log_every_env_steps=8",
    "logger.progress=false",
    "logger.plots=[]",
    "logger.wandb.mode=disabled",
]

SHORT_EPISODES = ["env.kwargs.max_cycles=12"]  # pixel / long-episode envs: eval ends fast

ENVS = {
    # env config: (extra overrides, agents)
    "mpe_spread": ([], 3),
    "pettingzoo": ([], 3),
    "coop_pong": (SHORT_EPISODES, 2),
    "pistonball": (SHORT_EPISODES, 5),
    "pursuit": (SHORT_EPISODES, 8),
    "ma_pong": (SHORT_EPISODES, 2),
    "climbing": ([], 2),
    "penalty": ([], 2),
}

EXPERIMENTS = {
    # experiment: (extra overrides, expected env name)
    "coma_spread": ([], "pettingzoo"),
    "coma_climbing": ([], "climbing"),
    "coma_penalty": ([], "penalty"),
    "coma_coop_pong": (SHORT_EPISODES, "pettingzoo"),
}


def train(overrides: list[str], run_dir: Path) -> tuple[dict, object]:
    dcfg = compose(overrides)
    cfg = to_config(dcfg)
    resolved = OmegaConf.to_container(dcfg, resolve=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        trainer = Trainer(cfg, run_dir, resolved)
        try:
            trainer.run()
        finally:
            trainer.env.close()
            trainer.eval_env.close()
    return json.loads((run_dir / "summary.json").read_text()), trainer


def check_summary(summary: dict, min_steps: int) -> None:
    assert summary["env_steps"] >= min_steps
    assert summary["eval/episodes"] == 1
    for k in ("wall_time_s", "steps_per_s", "eval/return_mean", "eval/length_mean"):
        assert k in summary and summary[k] == summary[k], k  # present, not NaN


@pytest.mark.parametrize("env_name", sorted(ENVS))
def test_every_env_config_trains(env_name, tmp_path):
    extra, n_agents = ENVS[env_name]
    summary, trainer = train([f"env={env_name}", *TINY, *extra], tmp_path)
    check_summary(summary, 16)
    assert trainer.spec.n_agents == n_agents
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any("loss/actor" in r for r in rows)


@pytest.mark.parametrize("experiment", sorted(EXPERIMENTS))
def test_every_experiment_trains(experiment, tmp_path):
    extra, env_name = EXPERIMENTS[experiment]
    summary, trainer = train([f"+experiment={experiment}", *TINY, *extra], tmp_path)
    check_summary(summary, 16)
    assert summary["name"] == experiment
    assert trainer.cfg.env.name == env_name
    if env_name in ("climbing", "penalty"):
        assert 0 <= summary["eval/joint_action_mean"] <= 8


def metric_rows(run_dir: Path) -> list[dict]:
    """metrics.jsonl without wall-clock fields (perf/*)."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(ln).items() if not k.startswith("perf/")}
            for ln in lines]


def copy_cut_at_checkpoint(whole: Path, cut: Path, env_steps: int) -> None:
    """Copy run ``whole`` to ``cut`` as if it had been killed right after its checkpoint
    at ``env_steps``: the later checkpoints and the summary are gone."""
    shutil.copytree(whole, cut)
    for ckpt in list_checkpoints(cut / "checkpoints"):
        if ckpt.name != f"ckpt_{env_steps:012d}.pt":
            ckpt.unlink()
    (cut / "summary.json").unlink()


@pytest.mark.parametrize("experiment", ["coma_spread", "coma_climbing"])
def test_resume_after_a_checkpoint_repeats_the_same_rows(experiment, tmp_path):
    """Kill after the checkpoint at 32 env steps (here: drop the later checkpoint), resume:
    the envs' saved state (get_state) makes the rows identical to the uninterrupted run."""
    run = [f"+experiment={experiment}", *TINY, "train.total_env_steps=64",
           "train.eval_every_env_steps=16", "train.log_every_env_steps=8",
           "checkpoint.every_env_steps=32", "checkpoint.keep=5"]
    whole = tmp_path / "whole"
    _, trainer = train(run, whole)
    assert hasattr(trainer.env, "get_state")  # resumable: no fresh episodes on resume
    cut = tmp_path / "cut"
    copy_cut_at_checkpoint(whole, cut, 32)
    train([*run, "resume=true"], cut)
    assert metric_rows(cut) == metric_rows(whole)


BAD_ENVS = [
    ("env.id=mpe2:simple_spred_v3", "error: env.id = 'mpe2:simple_spred_v3' is invalid: "
     "'mpe2' has no attribute 'simple_spred_v3'; close names: ['simple_spread_v3'"),
    ("env.id=no_such_module:env", "error: env.id = 'no_such_module:env' is invalid: no module "
     "named 'no_such_module'"),
    ("env.id=marl.envs.matrix:MatrixGameCore", "the factory returned a "
     "marl.envs.matrix.MatrixGameCore, not a PettingZoo ParallelEnv"),
    ("env.wrappers=[colour_reduction_v0]", "error: env.wrappers[0] = 'colour_reduction_v0' is "
     "invalid: SuperSuit has no wrapper 'colour_reduction_v0'; did you mean "
     "['color_reduction_v0'"),
    ("+env.kwargs.continuous_actions=true", "error: env.id = 'mpe2:simple_spread_v3' is not "
     "supported as configured: only Discrete action spaces are supported; agent 'agent_0' has "
     "Box"),
]


@pytest.mark.parametrize(("override", "message"), BAD_ENVS,
                         ids=["bad-id", "no-module", "not-an-env", "bad-wrapper", "continuous"])
def test_bad_env_reaches_the_command_line_as_one_error_line(override, message, tmp_path):
    """``python -m marl.train env=pettingzoo <bad>``: exit code 2, one ``error:`` line on
    stderr naming the field, what is wrong and what is supported; no run directory. Run as
    the user runs it, in its own process (Hydra's logging setup stays out of pytest's)."""
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "marl.train", "env=pettingzoo", override, *TINY,
         f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore::DeprecationWarning"})
    err = proc.stderr
    assert proc.returncode == 2, err[-1500:]
    assert "Traceback" not in err
    assert message in err, err[-1500:]
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1
    assert not run_dir.exists()
