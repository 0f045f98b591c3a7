"""Runs that survive: determinism, kill-and-resume identity, stop signals, NaN guards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_trainer

from marl.io.checkpoint import list_checkpoints, load_checkpoint
from marl.io.errors import NonFiniteError
from marl.train import Trainer

RUN = [
    "+experiment=coma_boxpush", "train.num_envs=16", "train.fragment_len=5",
    "train.total_env_steps=48000", "train.log_every_env_steps=2000",
    "train.eval_every_env_steps=12000", "train.eval_episodes=8",
    "checkpoint.every_env_steps=8000", "checkpoint.keep=20", "logger.progress=false",
    "logger.wandb.mode=disabled", "logger.plots=[]",
]


def start(run_dir: Path, extra: list[str] = ()) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "marl.train", *RUN, *extra, f"hydra.run.dir={run_dir}"],
        cwd=run_dir.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, err


def rows(run_dir: Path) -> list[dict]:
    """metrics.jsonl without wall-clock fields (perf/*)."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(ln).items() if not k.startswith("perf/")}
            for ln in lines]


def wait_for_checkpoints(run_dir: Path, k: int, proc: subprocess.Popen) -> None:
    deadline = time.time() + 300
    while len(list_checkpoints(run_dir / "checkpoints")) < k:
        assert proc.poll() is None, "run ended before its checkpoint"
        assert time.time() < deadline
        time.sleep(0.005)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list[dict]:
    run_dir = tmp_path_factory.mktemp("ref") / "run"
    code, _, err = finish(start(run_dir))
    assert code == 0, err[-2000:]
    return rows(run_dir)


def test_same_seed_same_metrics(reference, tmp_path):
    """Determinism on CPU: the same config and seed give identical metrics.jsonl rows."""
    run_dir = tmp_path / "again"
    code, _, err = finish(start(run_dir))
    assert code == 0, err[-2000:]
    assert rows(run_dir) == reference
    assert len(reference) >= 24 and reference[-1]["env_steps"] >= 48000


def test_sigkill_after_checkpoint_then_resume_gives_the_same_rows(reference, tmp_path):
    run_dir = tmp_path / "killed"
    proc = start(run_dir)
    wait_for_checkpoints(run_dir, 2, proc)
    proc.send_signal(signal.SIGKILL)
    code, _, _ = finish(proc)
    assert code == -signal.SIGKILL
    assert not (run_dir / "summary.json").exists()
    code, _, err = finish(start(run_dir, ["resume=true"]))
    assert code == 0, err[-2000:]
    assert "resumed from" in err
    assert rows(run_dir) == reference  # no duplicated, lost or different row


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_stop_signal_checkpoints_and_resumes(reference, tmp_path, sig):
    run_dir = tmp_path / "signalled"
    proc = start(run_dir)
    wait_for_checkpoints(run_dir, 1, proc)
    proc.send_signal(sig)
    code, out, err = finish(proc)
    assert code == 128 + sig, err[-2000:]
    assert f"stopped by {signal.Signals(sig).name}" in err
    assert out.strip().splitlines()[-1] == f"run directory: {run_dir}"
    newest = list_checkpoints(run_dir / "checkpoints")[-1]
    state = load_checkpoint(newest)
    assert rows(run_dir)[-1]["env_steps"] <= state["env_steps"]
    code, _, err = finish(start(run_dir, ["resume=true"]))
    assert code == 0, err[-2000:]
    assert rows(run_dir) == reference


def test_resume_refuses_another_configuration(tmp_path):
    run_dir = tmp_path / "run"
    proc = start(run_dir)
    wait_for_checkpoints(run_dir, 1, proc)
    proc.send_signal(signal.SIGKILL)
    finish(proc)
    code, _, err = finish(start(run_dir, ["resume=true", "algo.actor_lr=0.1"]))
    assert code == 2
    assert "different configuration" in err and "algo.actor_lr" in err


def test_config_diff_lets_a_checkpoint_predate_a_field_left_at_its_default():
    """A field added since the checkpoint was written resumes when this run keeps its
    default (the old behaviour); set to anything else, or changed, it is refused."""
    from functools import partial

    from marl.algos.coma.config import ComaConfig
    from marl.io.resume import config_diff

    diff = partial(config_diff, algo_schema=ComaConfig)  # the run's learner family
    old = {"algo.actor_lr": 1e-3, "train.total_env_steps": 10}
    mine = {"algo.actor_lr": 1e-3, "train.total_env_steps": 20,
            "algo.optimistic_others": 0.0}
    assert diff(mine, old) == []
    assert config_diff(mine, old) == ["algo.optimistic_others"]  # no schema: refused
    assert diff({**mine, "algo.optimistic_others": 0.9}, old) == ["algo.optimistic_others"]
    assert diff(mine, {**old, "algo.optimistic_others": 0.9}) == ["algo.optimistic_others"]
    assert diff({**mine, "algo.not_a_field": 1}, old) == ["algo.not_a_field"]
    assert diff({**mine, "algo.actor_lr": 0.1}, old) == ["algo.actor_lr"]


def test_config_diff_walks_the_env_schema_for_env_fields():
    """The same for an env field: Config.env is typed Any, so the env's own schema says
    what its defaults are."""
    from marl.envs.configs import BoxPushEnvConfig
    from marl.io.resume import config_diff
    default = BoxPushEnvConfig().step_penalty
    old = {"env.width": 5}
    mine = {"env.width": 5, "env.step_penalty": default}
    assert config_diff(mine, old) == ["env.step_penalty"]  # no schema: refused
    assert config_diff(mine, old, BoxPushEnvConfig) == []
    assert config_diff({**mine, "env.step_penalty": default + 0.5}, old,
                       BoxPushEnvConfig) == ["env.step_penalty"]


def test_existing_run_dir_needs_resume(tmp_path):
    run_dir = tmp_path / "run"
    proc = start(run_dir, ["train.total_env_steps=2000"])
    assert finish(proc)[0] == 0
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    code, _, err = finish(start(run_dir, ["train.total_env_steps=2000"]))
    assert code == 2 and "already holds a run" in err
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
    code, _, err = finish(start(run_dir, ["train.total_env_steps=4000", "resume=true"]))
    assert code == 0, err[-2000:]


def _trainer(run_dir: Path, overrides: list[str]) -> Trainer:
    return make_trainer(run_dir, [*RUN, *overrides])


def test_nan_reward_stops_cleanly_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = _trainer(tmp_path, ["train.total_env_steps=20000"])
    env, real_step = trainer.env, trainer.env.step
    calls = {"n": 0}

    def poisoned(actions: np.ndarray):
        buf = real_step(actions)
        calls["n"] += 1
        if calls["n"] > 750:  # after 12,000 env steps: past the first checkpoint
            buf.reward[0, 0] = float("nan")
        return buf

    env.step = poisoned
    with pytest.raises(NonFiniteError) as e:
        trainer.run()
    msg = str(e.value)
    assert "critic central_q loss is nan" in msg and "env_steps=12080" in msg
    ckpts = list_checkpoints(tmp_path / "checkpoints")
    assert [load_checkpoint(p)["env_steps"] for p in ckpts] == [8000]
    assert str(ckpts[0]) in msg
    state = load_checkpoint(ckpts[0])
    for net in state["learner"]["critics"]["central_q"]["net"].values():
        assert torch.isfinite(net).all()
    assert not (tmp_path / "summary.json").exists()


def test_nan_in_a_parameter_is_never_checkpointed(tmp_path):
    trainer = _trainer(tmp_path, ["train.total_env_steps=10000"])
    with torch.no_grad():
        next(trainer.learner.actor.parameters())[0, 0] = float("inf")
    with pytest.raises(NonFiniteError, match="actor"):
        trainer.run()
    assert list_checkpoints(tmp_path / "checkpoints") == []


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_wandb_offline_run_id_survives_resume(tmp_path):
    run_dir = tmp_path / "wb"
    extra = ["logger.wandb.mode=offline"]
    proc = start(run_dir, extra)
    wait_for_checkpoints(run_dir, 1, proc)
    proc.send_signal(signal.SIGTERM)
    finish(proc)
    first_id = load_checkpoint(list_checkpoints(run_dir / "checkpoints")[-1])["wandb_run_id"]
    assert first_id
    code, _, err = finish(start(run_dir, ["resume=true", *extra]))
    assert code == 0, err[-2000:]
    runs = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert runs and all(r.name.endswith(first_id) for r in runs)


def test_init_from_loads_the_networks_of_another_run(tmp_path):
    first = _trainer(tmp_path / "a", ["train.total_env_steps=2000"])
    first.run()
    second = _trainer(tmp_path / "b", ["train.total_env_steps=2000", "env.solo_push_prob=0",
                                       f"init_from={tmp_path / 'a'}"])
    for p, q in zip(first.learner.parameters(), second.learner.parameters(), strict=True):
        assert torch.equal(p, q)
    assert second.env_steps == 0 and second.learner.n_updates == 0
    with pytest.raises(Exception, match="no checkpoint"):
        _trainer(tmp_path / "c", [f"init_from={tmp_path / 'b'}"])


def test_resume_with_a_shorter_total_evaluates_and_finishes(tmp_path):
    run_dir = tmp_path / "run"
    proc = start(run_dir)
    wait_for_checkpoints(run_dir, 2, proc)
    proc.send_signal(signal.SIGKILL)
    finish(proc)
    code, _, err = finish(start(run_dir, ["resume=true", "train.total_env_steps=1000"]))
    assert code == 0, err[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["env_steps"] >= 16000 and "eval/return_mean" in summary


def test_a_run_of_an_older_marl_resumes_and_a_newer_one_is_refused(tmp_path):
    """A run directory written before run format 2 (checkpoints without checksum, no
    provenance.json, no lock file) resumes; one a newer marl wrote is refused in one
    line naming that version, by marl.train and marl.evaluate alike. Real processes, as
    a user runs them."""
    from marl.io.provenance import NAME

    short = [*RUN[:3], "train.total_env_steps=2000", *RUN[4:]]
    run_dir = tmp_path / "run"

    def marl(module: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", module, *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=600)

    first = marl("marl.train", *short, "train.total_env_steps=1200",
                 f"hydra.run.dir={run_dir}")
    assert first.returncode == 0, first.stderr[-2000:]
    for p in list_checkpoints(run_dir / "checkpoints"):  # as format 1 wrote them
        torch.save({**load_checkpoint(p), "format_version": 1}, p)
    (run_dir / NAME).unlink()
    (run_dir / ".lock").unlink()
    refused = marl("marl.train", *short, "resume=true", f"hydra.run.dir={run_dir}")
    assert refused.returncode == 2 and "checkpoint.allow_unverified=true" in refused.stderr
    (run_dir / ".lock").unlink(missing_ok=True)
    resumed = marl("marl.train", *short, "resume=true", "checkpoint.allow_unverified=true",
                   f"hydra.run.dir={run_dir}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((run_dir / NAME).read_text())["run_format"] == 2
    (run_dir / NAME).write_text(json.dumps({"marl_version": "9.0", "run_format": 99}))
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    for proc in (marl("marl.train", *short, "resume=true", f"hydra.run.dir={run_dir}"),
                 marl("marl.evaluate", f"run_dir={run_dir}")):
        assert proc.returncode == 2, proc.stderr[-2000:]
        err = proc.stderr.strip().splitlines()
        assert len(err) == 1 and "written by marl 9.0 (run format 99)" in err[0], err
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
