"""A failing job does not stop a sweep; the sweep's exit status and summary name it."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_failed_job_is_reported_and_others_finish(tmp_path):
    sweep_dir = tmp_path / "sweep"
    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.run(
        [sys.executable, "-m", "marl.train", "-m", "+experiment=coma_boxpush",
         "train.total_env_steps=640", "train.num_envs=8", "train.eval_episodes=2",
         "logger.progress=false", "logger.wandb.mode=disabled", "logger.plots=[]",
         "algo.actor_lr=-1,0.001,0.002", f"hydra.sweep.dir={sweep_dir}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    report = json.loads((sweep_dir / "sweep_summary.json").read_text())
    assert report["n_jobs"] == 3 and report["n_failed"] == 1
    failed = [j for j in report["jobs"] if j["status"] == "failed"]
    assert "algo.actor_lr = -1.0 is invalid" in failed[0]["error"]
    ok = [j for j in report["jobs"] if j["status"] == "ok"]
    assert len(ok) == 2  # the jobs after the failed one still ran
    assert "1 of 3 sweep jobs did not finish" in proc.stderr
