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


def test_refused_job_names_the_file_its_stderr_went_to(tmp_path):
    """A sweep job refused at start (a bad value) names its cluster log in the summary:
    the file its stderr went to (a submitit or Ray worker log), not an empty train.log."""
    sweep_dir, err = tmp_path / "sweep", tmp_path / "worker.err"
    env = {**os.environ, "WANDB_MODE": "disabled"}
    with err.open("w") as stderr:
        proc = subprocess.run(
            [sys.executable, "-m", "marl.train", "-m", "+experiment=coma_boxpush",
             "train.total_env_steps=640", "train.num_envs=8", "train.eval_episodes=2",
             "logger.progress=false", "logger.wandb.mode=disabled", "logger.plots=[]",
             "algo.actor_lr=-1", f"hydra.sweep.dir={sweep_dir}"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
            timeout=300)
    assert proc.returncode == 1, err.read_text()[-2000:]
    (job,) = json.loads((sweep_dir / "sweep_summary.json").read_text())["jobs"]
    assert job["status"] == "failed" and job["log"] == str(err), job


def test_a_pickled_job_is_a_fresh_one(tmp_path, monkeypatch):
    """submitit requeues a preempted job by pickling its task, by value under
    ``python -m marl.train``, with the module globals it reads: the job's held directory
    (a lock) and open train.log (a file handler) stay behind in the process."""
    import pickle

    import cloudpickle

    import marl.train
    from marl.lifecycle import Job

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    job = Job()
    job.claim_job_dir(run_dir)
    job.open_log(run_dir)
    try:
        monkeypatch.setattr(marl.train, "JOB", job)
        cloudpickle.register_pickle_by_value(marl.train)
        try:
            blob = cloudpickle.dumps(marl.train._train)
        finally:
            cloudpickle.unregister_pickle_by_value(marl.train)
        fresh = pickle.loads(cloudpickle.dumps(job))
        assert (fresh.held, fresh._log) == (None, None)
        assert len(blob) > 0
    finally:
        job.release()
