"""End to end: tiny Hydra runs of ``python -m marl.train`` and everything they leave behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY as BASE

from marl.io.checkpoint import CheckpointError, list_checkpoints, load_checkpoint

TINY = [*BASE, "train.eval_every_env_steps=800", "train.log_every_env_steps=400",
        "checkpoint.every_env_steps=1000", "checkpoint.keep=2"]


def run_train(args: list[str], cwd: Path, env_extra: dict[str, str] | None = None,
              check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_SILENT": "true", **(env_extra or {})}
    env.pop("WANDB_API_KEY", None)
    proc = subprocess.run([sys.executable, "-m", "marl.train", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_tiny_run_writes_every_output(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_train([*TINY, "logger.wandb.mode=disabled", f"hydra.run.dir={run_dir}",
                      "train.eval_video=true", "logger.plots=[learning_curve,action_probs]"],
                     cwd=tmp_path)
    # the last line printed names the run directory
    assert proc.stdout.strip().splitlines()[-1] == f"run directory: {run_dir}"
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) >= 4
    steps = [r["env_steps"] for r in rows]
    assert steps == sorted(steps) and steps[-1] >= 2000
    keys = set().union(*rows)
    for k in ("loss/critic", "loss/actor", "train/return", "train/success", "eval/return_mean",
              "eval/success_rate", "perf/steps_per_s", "credit/robot_0/advantage_mean",
              "train/pushes/robot_1_mean"):
        assert k in keys, k
    summary = json.loads((run_dir / "summary.json").read_text())
    for k in ("env_steps", "wall_time_s", "steps_per_s", "eval/return_mean",
              "eval/success_rate", "peak_rss_mib"):
        assert k in summary, k
    assert summary["env_steps"] >= 2000 and summary["eval/episodes"] == 6
    assert 0.0 <= summary["eval/success_rate"] <= 1.0
    ckpts = list_checkpoints(run_dir / "checkpoints")
    assert 1 <= len(ckpts) <= 2  # keep_checkpoints=2
    state = load_checkpoint(ckpts[-1])
    assert state["env_steps"] == summary["env_steps"]
    assert {"actor", "actor_opt", "critics"} <= set(state["learner"])
    assert {"net", "target", "opt", "n_updates"} <= set(state["learner"]["critics"]["central_q"])
    assert not list((run_dir / "checkpoints").glob(".tmp_*"))
    gifs = sorted((run_dir / "videos").glob("eval_*.gif"))
    assert len(gifs) == 3  # two periodic evaluations and the final one
    assert gifs[0].read_bytes()[:6] == b"GIF89a"
    for name in ("learning_curve", "action_probs"):
        assert (run_dir / "plots" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_runs_from_any_working_directory_with_wandb_offline(tmp_path):
    """Offline W&B (no key, no network): one run in the run dir with the config and x-axis."""
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    run_dir = tmp_path / "run_offline"
    run_train([*TINY, "logger.wandb.mode=offline", f"hydra.run.dir={run_dir}"], cwd=elsewhere,
              env_extra={"WANDB_MODE": "offline"})
    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("*.wandb")), "no W&B history file written"
    assert (run_dir / "summary.json").is_file()


def test_wandb_init_failure_does_not_stop_training(tmp_path):
    run_dir = tmp_path / "run_badwandb"
    # online mode without a key or network: init fails, training must go on.
    proc = run_train([*TINY, "logger.wandb.mode=online", f"hydra.run.dir={run_dir}"],
                     cwd=tmp_path, env_extra={"WANDB_API_KEY": "", "WANDB_BASE_URL":
                                              "http://127.0.0.1:9", "WANDB_INIT_TIMEOUT": "5"})
    assert "W&B" in proc.stderr
    assert (run_dir / "summary.json").is_file()


def test_bad_value_fails_before_anything_is_written(tmp_path):
    run_dir = tmp_path / "bad"
    proc = run_train([*TINY, "algo.td_lambda=1.5", f"hydra.run.dir={run_dir}"], cwd=tmp_path,
                     check=False)
    assert proc.returncode == 2
    assert "algo.td_lambda = 1.5 is invalid" in proc.stderr
    assert not run_dir.exists()


def test_unknown_experiment_lists_available(tmp_path):
    proc = run_train(["+experiment=coma_boxpsh"], cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "coma_boxpush" in proc.stderr and "coma_boxpush_strict" in proc.stderr


def test_resume_continues_from_the_last_checkpoint(tmp_path):
    """The resumed run logs at another cadence (a key resume may change): a run that
    silently restarted from scratch would rewrite the rows up to 2,000 steps at that
    cadence; a real continuation keeps them and only adds rows after them."""
    run_dir = tmp_path / "resumable"
    run_train([*TINY, "logger.wandb.mode=disabled", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    first = json.loads((run_dir / "summary.json").read_text())["env_steps"]
    before = (run_dir / "metrics.jsonl").read_text().splitlines()
    proc = run_train([*TINY, "train.total_env_steps=3000", "resume=true",
                      "train.log_every_env_steps=120", "logger.wandb.mode=disabled",
                      f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert f"resumed from {run_dir / 'checkpoints'}" in proc.stderr
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert lines[:len(before)] == before, "rows of the first run must be kept as they were"
    steps = [json.loads(line)["env_steps"] for line in lines]
    assert steps == sorted(steps), "resumed rows must continue the x-axis"
    assert min(steps[len(before):]) > first
    assert json.loads((run_dir / "summary.json").read_text())["env_steps"] >= 3000 > first


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "ckpt_000000000010.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="no header line.*checkpoint.allow_unverified=true"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(bad, allow_unverified=True)
