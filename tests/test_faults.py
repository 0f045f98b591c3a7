"""Fault injection: whatever happens to a run directory, nothing is lost.

Each case ends with the run resumed to rows identical to an uninterrupted run, or
refused with every file as it was (compared byte for byte). In-process through the real
entry point (``marl.train.main``) where one process suffices; real processes where the
case needs two (concurrent writers) or a kill -9. A full disk is a real one: a small
tmpfs (root only; skipped otherwise).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import QUIET, ROOT, TINY
from hydra.core.global_hydra import GlobalHydra

from marl.io.checkpoint import list_checkpoints, load_checkpoint
from marl.train import Trainer, main

RUN = [*TINY, *QUIET, "train.log_every_env_steps=200", "train.eval_every_env_steps=800",
       "checkpoint.every_env_steps=400", "checkpoint.keep=20"]


def train(run_dir: Path, *extra: str, monkeypatch) -> int:
    """``python -m marl.train`` in this process; its exit status."""
    GlobalHydra.instance().clear()
    monkeypatch.setattr(sys, "argv", ["marl.train", *RUN, *extra, f"hydra.run.dir={run_dir}"])
    try:
        main()
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def spawn(run_dir: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}
    return subprocess.Popen([sys.executable, "-m", "marl.train", *RUN, *extra,
                             f"hydra.run.dir={run_dir}"], cwd=run_dir.parent, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_jsonl(path: Path) -> list[dict]:
    try:
        from marl.io.files import read_jsonl
    except ImportError:  # marl before the torn-line tolerant reader
        return [json.loads(ln) for ln in path.read_text().splitlines()]
    return read_jsonl(path)


def rows(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith("perf/")}
            for r in read_jsonl(run_dir / "metrics.jsonl")]


def hold_lock(run_dir: Path) -> int:
    """Hold ``run_dir``'s lock as a live run would (fd to close when done)."""
    fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "since": "now"}).encode())
    return fd


def ckpts(run_dir: Path) -> list[str]:
    return [p.name for p in list_checkpoints(run_dir / "checkpoints")]


def snapshot(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes()
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


def stop_at(monkeypatch, env_steps: int) -> None:
    """Send this process SIGUSR1 once the run has collected ``env_steps`` (it stops with a
    checkpoint there, exit 138)."""
    from marl.core.runner import Runner

    collect = Runner.collect

    def collect_then_signal(self, policy):
        out = collect(self, policy)
        if self.env_steps >= env_steps:
            os.kill(os.getpid(), signal.SIGUSR1)
        return out

    monkeypatch.setattr(Runner, "collect", collect_then_signal)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[list[dict], list[str]]:
    run_dir = tmp_path_factory.mktemp("ref") / "run"
    with pytest.MonkeyPatch.context() as mp:
        assert train(run_dir, monkeypatch=mp) == 0
    return rows(run_dir), ckpts(run_dir)


@pytest.fixture
def stopped(tmp_path, monkeypatch) -> Path:
    """A run stopped by a signal at env step 1000 (checkpoints 400, 800, 1000)."""
    run_dir = tmp_path / "run"
    with pytest.MonkeyPatch.context() as mp:
        stop_at(mp, 1000)
        assert train(run_dir, monkeypatch=monkeypatch) == 128 + signal.SIGUSR1
    assert ckpts(run_dir)[-1] == "ckpt_000000001000.pt"
    return run_dir


def resume_and_compare(run_dir: Path, reference, monkeypatch, capsys) -> str:
    assert train(run_dir, "resume=true", monkeypatch=monkeypatch) == 0
    assert rows(run_dir) == reference[0]
    assert set(reference[1]) <= set(ckpts(run_dir))
    return capsys.readouterr().err


# ----------------------------------------------------------------- concurrent writers
def test_two_runs_started_at_once_into_one_directory(tmp_path, reference):
    run_dir = tmp_path / "run"
    procs = [spawn(run_dir), spawn(run_dir)]
    results = sorted((p.wait(timeout=300), p.stderr.read()) for p in procs)
    assert [code for code, _ in results] == [0, 2], results
    err = results[1][1].strip()
    assert len(err.splitlines()) == 1 and str(run_dir) in err, err
    assert rows(run_dir) == reference[0]  # one writer: no row twice


def test_a_resume_while_another_process_holds_the_run_is_refused(tmp_path, stopped,
                                                                  monkeypatch, capsys):
    fd = hold_lock(stopped)  # this process stands for a live run
    before = snapshot(stopped)
    try:
        proc = spawn(stopped, "resume=true")
        code, err = proc.wait(timeout=300), proc.stderr.read().strip()
    finally:
        os.close(fd)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"pid {os.getpid()}" in err and str(stopped) in err
    assert snapshot(stopped) == before


def test_default_directories_differ_for_runs_started_in_the_same_second():
    from marl.cli import compose_checked

    dirs = {str(compose_checked(["+experiment=coma_boxpush"])[1]) for _ in range(3)}
    assert len(dirs) == 3, dirs
    assert all("coma" in Path(d).name for d in dirs)


# ----------------------------------------------------------------- refused runs
def test_a_refused_run_leaves_a_finished_run_byte_identical(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    assert train(run_dir, monkeypatch=monkeypatch) == 0
    capsys.readouterr()
    before = snapshot(run_dir)
    assert train(run_dir, "train.num_envs=4", monkeypatch=monkeypatch) == 2
    assert train(run_dir, "resume=true", "algo.actor_lr=0.1", monkeypatch=monkeypatch) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "already holds a run" in err[0], err
    assert "different configuration" in err[1] and "algo.actor_lr" in err[1]
    assert snapshot(run_dir) == before
    from marl.evaluate import main as evaluate

    assert evaluate([f"run_dir={run_dir}", "episodes=2"]) == 0


# ----------------------------------------------------------------- torn and broken files
def test_a_torn_metrics_line_is_cut_on_resume(stopped, reference, monkeypatch, capsys):
    with open(stopped / "metrics.jsonl", "a") as f:
        f.write('{"env_steps": 1040, "train/retu')
    assert read_jsonl(stopped / "metrics.jsonl")[-1]["env_steps"] == 1000  # readers cope
    err = resume_and_compare(stopped, reference, monkeypatch, capsys)
    assert f"{stopped / 'metrics.jsonl'}: its last line is torn" in err


@pytest.mark.parametrize("damage", ["truncate", "bitflip"])
def test_a_broken_newest_checkpoint_falls_back_to_an_intact_one(stopped, reference, damage,
                                                                monkeypatch, capsys):
    newest = stopped / "checkpoints" / "ckpt_000000001000.pt"
    data = bytearray(newest.read_bytes())
    if damage == "truncate":
        data = data[:len(data) // 2]
    else:  # other finite floats in the middle of the payload
        data[len(data) // 2:len(data) // 2 + 8] = b"\x00\x00\x80\x3f\x00\x00\x00\x40"
    newest.write_bytes(bytes(data))
    err = resume_and_compare(stopped, reference, monkeypatch, capsys)
    assert "skipped ckpt_000000001000.pt" in err and "resumed from" in err
    assert ckpts(stopped) == reference[1]  # no extra checkpoint after the resume


def test_strict_refuses_a_broken_newest_checkpoint(stopped, monkeypatch, capsys):
    newest = stopped / "checkpoints" / "ckpt_000000001000.pt"
    newest.write_bytes(newest.read_bytes()[:-100])
    before = snapshot(stopped)
    assert train(stopped, "resume=true", "checkpoint.strict=true", monkeypatch=monkeypatch) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ckpt_000000001000.pt" in err[0] and "strict" in err[0], err
    assert snapshot(stopped) == before


def test_kill_9_mid_run_then_resume(tmp_path, reference, monkeypatch, capsys):
    """A real kill -9 after the first checkpoint, plus the leftovers of a write it cut
    (a temporary checkpoint, a torn row): the resume cleans them and loses nothing."""
    run_dir = tmp_path / "run"
    proc = spawn(run_dir, "train.total_env_steps=400000")
    while not list_checkpoints(run_dir / "checkpoints"):
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    (run_dir / "checkpoints" / ".tmp_ckpt_000000000800.pt.x1").write_bytes(b"\0" * 1000)
    (run_dir / "checkpoints" / ".tmp_abc.pt").write_bytes(b"\0" * 1000)  # older marl's
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write('{"env_steps": 99')
    resume_and_compare(run_dir, reference, monkeypatch, capsys)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == reference[1]


def test_resuming_a_finished_run_recreates_its_summary_and_plots(tmp_path, monkeypatch,
                                                                capsys):
    run_dir = tmp_path / "run"
    assert train(run_dir, "logger.plots=[learning_curve]", monkeypatch=monkeypatch) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").unlink()
    for p in (run_dir / "plots").iterdir():
        p.unlink()
    (run_dir / "plots").rmdir()
    assert train(run_dir, "resume=true", "logger.plots=[learning_curve]",
                 monkeypatch=monkeypatch) == 0
    again = json.loads((run_dir / "summary.json").read_text())
    keys = [k for k in summary if k.startswith(("eval/", "loss/"))]
    assert keys and {k: again[k] for k in keys} == {k: summary[k] for k in keys}
    assert (run_dir / "plots" / "learning_curve.png").is_file()
    assert summary["provenance"]["run_format"] >= 2


# ----------------------------------------------------------------- a full disk
@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (root only): room for one tiny run's checkpoint, not two."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(mnt)],
            capture_output=True).returncode:
        pytest.skip("needs root to mount a small tmpfs")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _grow(mnt: Path) -> None:
    subprocess.run(["mount", "-o", "remount,size=64M", str(mnt)], check=True)


def _check_disk_full(run_dir: Path, err: str, what: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "no space left on device while writing" in lines[0], err
    assert what in lines[0], lines
    failed = json.loads((run_dir / "failed.json").read_text())
    assert failed["exit_code"] == 1 and "no space left" in failed["error"]
    for p in list_checkpoints(run_dir / "checkpoints"):
        load_checkpoint(p)  # every checkpoint left is intact
    assert not list((run_dir / "checkpoints").glob(".tmp_*"))


def test_a_full_disk_at_a_checkpoint(small_disk, reference, monkeypatch, capsys):
    run_dir = small_disk / "run"
    assert train(run_dir, monkeypatch=monkeypatch) == 1
    _check_disk_full(run_dir, capsys.readouterr().err, "ckpt_")
    _grow(small_disk)
    resume_and_compare(run_dir, reference, monkeypatch, capsys)


def test_a_full_disk_at_a_metrics_row(small_disk, tmp_path, monkeypatch, capsys):
    """The disk fills up after the first checkpoint; a row every update fills the last
    free bytes of the metrics file's page before the next checkpoint is due."""
    every = "train.log_every_env_steps=40"
    assert train(tmp_path / "ref", every, monkeypatch=monkeypatch) == 0
    reference = rows(tmp_path / "ref"), ckpts(tmp_path / "ref")
    run_dir = small_disk / "run"
    save = Trainer.save

    def save_then_fill(self, wall):
        path = save(self, wall)
        if self.env_steps == 400:
            st = os.statvfs(small_disk)
            (small_disk / "ballast").write_bytes(b"\0" * (st.f_bavail * st.f_frsize))
        return path

    monkeypatch.setattr(Trainer, "save", save_then_fill)
    assert train(run_dir, every, monkeypatch=monkeypatch) == 1
    _check_disk_full(run_dir, capsys.readouterr().err, "metrics.jsonl")
    assert (run_dir / "metrics.jsonl").read_bytes().endswith(b"\n")  # whole rows only
    assert ckpts(run_dir) == ["ckpt_000000000400.pt"]
    (small_disk / "ballast").unlink()
    _grow(small_disk)
    monkeypatch.setattr(Trainer, "save", save)
    assert train(run_dir, every, "resume=true", monkeypatch=monkeypatch) == 0
    assert rows(run_dir) == reference[0] and ckpts(run_dir) == reference[1]


def test_provenance_names_the_version_and_the_commit(tmp_path):
    from marl.io.provenance import RUN_FORMAT, provenance

    p = provenance()
    assert p["run_format"] == RUN_FORMAT and p["marl_version"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True)
    if head.returncode == 0:
        assert p["git"]["commit"] == head.stdout.strip()
        assert isinstance(p["git"]["dirty"], bool)
    else:
        assert p["git"] is None
