"""A failing job does not stop a sweep; the sweep's exit status and summary name it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


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


STOP_HOOK = '''
import os, signal
from pathlib import Path
from hydra.core.hydra_config import HydraConfig

def HOOK(event):
    """SIGTERM to this process once, in the sweep's second job, after 400 env steps."""
    marker = Path(os.environ["STOP_MARKER"])
    if HydraConfig.get().job.num == 1 and event.env_steps >= 400 and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGTERM)
    return {}
'''


@pytest.mark.slow
def test_a_stopped_sweep_exits_128_plus_signal_and_the_same_command_continues(tmp_path):
    """SIGTERM in the second of three jobs (Hydra's basic launcher: the jobs run in the
    sweep's process) stops the sweep, exit 143, the job checkpointed and the third never
    started. The same command with resume=true continues the same sweep directory: the
    first job is skipped (its rows unchanged), the second resumes, the third starts."""
    (tmp_path / "stop_hook.py").write_text(STOP_HOOK)
    env = {**os.environ, "WANDB_MODE": "disabled", "STOP_MARKER": str(tmp_path / "sent")}
    cmd = [sys.executable, "-m", "marl.train", "-m", "+experiment=coma_boxpush",
           "seed=0,1,2", "train.total_env_steps=800", "train.num_envs=8",
           "train.eval_episodes=2", "checkpoint.every_env_steps=400", "logger.progress=false",
           "logger.wandb.mode=disabled", "logger.plots=[]", f"plugin_path=[{tmp_path}]",
           "logger.metrics=[stop_hook:HOOK]"]
    first = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=600)
    assert first.returncode == 128 + 15, first.stderr[-2000:]
    (sweep,) = (tmp_path / "multirun" / "coma_boxpush").iterdir()
    jobs = {p.name.split("_")[0]: p for p in sweep.iterdir() if p.is_dir() and p.name[0].isdigit()}
    assert sorted(jobs) == ["0", "1"]
    assert (jobs["0"] / "summary.json").exists() and not (jobs["1"] / "summary.json").exists()
    assert any((jobs["1"] / "checkpoints").iterdir())
    rows0 = (jobs["0"] / "metrics.jsonl").read_bytes()

    again = subprocess.run([*cmd, "resume=true"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert [sweep] == list((tmp_path / "multirun" / "coma_boxpush").iterdir())
    done = {p.name.split("_")[0]: p for p in sweep.iterdir() if p.is_dir() and p.name[0].isdigit()}
    assert sorted(done) == ["0", "1", "2"]
    assert all((p / "summary.json").exists() for p in done.values())
    assert (done["0"] / "metrics.jsonl").read_bytes() == rows0
    steps = [json.loads(line)["env_steps"]
             for line in (done["1"] / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] >= 800


def test_resume_continues_the_newest_sweep_of_the_same_overrides(tmp_path):
    from marl.io.sweepdir import previous_sweep

    def sweep(stamp: str, task: list[str]) -> Path:
        d = tmp_path / "multirun" / "x" / stamp
        d.mkdir(parents=True)
        (d / "multirun.yaml").write_text(
            "hydra:\n  overrides:\n    task: [" + ", ".join(f"'{o}'" for o in task) + "]\n")
        return d

    older = sweep("2026-01-01_10-00-00_aaaaaa", ["seed=0,1", "+experiment=e"])
    sweep("2026-01-02_10-00-00_bbbbbb", ["seed=0,1,2", "+experiment=e"])
    newer = sweep("2026-01-03_10-00-00_cccccc", ["+experiment=e", "seed=0,1", "resume=true"])
    new_dir = tmp_path / "multirun" / "x" / "2026-01-04_10-00-00_dddddd"
    got = previous_sweep(new_dir, ["+experiment=e", "seed=0,1", "resume=true",
                                   "hydra/launcher=joblib_cpu"])
    assert got == newer and older.exists()
    assert previous_sweep(new_dir, ["+experiment=e", "seed=3"]) is None
    assert previous_sweep(tmp_path / "nowhere" / "s", ["seed=0"]) is None
