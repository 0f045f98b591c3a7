"""Run directories that never lie (issue 41): every entry point takes the lock before it
writes, whatever Hydra flags are given; nothing foreign is deleted; nothing lost is
hidden. In-process through the real entry points (``marl.train.main``,
``marl.evaluate.main``) under ``capsys``; the helpers are tests/test_faults.py's.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from test_faults import RUN, hold_lock, snapshot

from marl.train import main

MINE = ["+experiment=mine", *RUN[1:]]  # RUN with the user's experiment (user_conf)
assert RUN[0] == "+experiment=coma_boxpush"


def train(run_dir: Path, *extra: str, monkeypatch, base: list[str] = RUN) -> int:
    """``python -m marl.train <base> <extra> hydra.run.dir=<run_dir>`` in this process;
    its exit status."""
    GlobalHydra.instance().clear()
    monkeypatch.setattr(sys, "argv", ["marl.train", *base, *extra,
                                      f"hydra.run.dir={run_dir}"])
    try:
        main()
    except SystemExit as e:
        return int(e.code or 0)
    return 0


@pytest.fixture
def user_conf(tmp_path) -> Path:
    """A user's own config directory (``--config-dir``), as docs/getting-started.md
    shows: an experiment file joining the shipped groups."""
    conf = tmp_path / "my_conf"
    (conf / "experiment").mkdir(parents=True)
    (conf / "experiment" / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - coma_boxpush\n  - _self_\nseed: 3\n")
    return conf


def err_lines(capsys) -> list[str]:
    return [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]


# ------------------------------------------------------------- 1. claim first, any flag
@pytest.mark.parametrize("form", ["--config-dir", "-cd", "--config-dir="])
def test_a_second_writer_with_config_dir_is_refused(tmp_path, user_conf, form, monkeypatch,
                                                    capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    fd = hold_lock(run_dir)  # this process stands for the first writer, still running
    before = snapshot(run_dir)
    flag = [form + str(user_conf)] if form.endswith("=") else [form, str(user_conf)]
    try:
        code = train(run_dir, *flag, monkeypatch=monkeypatch, base=MINE)
    finally:
        os.close(fd)
    err = err_lines(capsys)
    assert code == 2 and len(err) == 1, err
    assert str(run_dir) in err[0] and f"pid {os.getpid()}" in err[0]
    assert snapshot(run_dir) == before


def test_config_dir_and_config_name_compose_as_hydra_does(tmp_path, user_conf):
    from marl.cli import compose_checked, split_flags

    (user_conf / "other.yaml").write_text(
        "defaults:\n  - config\n  - _self_\nseed: 11\n")
    flags, overrides, other = split_flags(["-cd", str(user_conf), "-cn", "other",
                                           "+experiment=mine", "seed=5"])
    assert other == [] and overrides == ["+experiment=mine", "seed=5"]
    assert compose_checked(overrides, flags)[0].seed == 5
    cfg, *_ = compose_checked(["+experiment=coma_boxpush"], split_flags(
        ["-cd", str(user_conf), "-cn", "other"])[0])
    assert cfg.seed == 11


def test_a_finished_run_is_refused_with_config_dir_byte_identical(tmp_path, user_conf,
                                                                  monkeypatch, capsys):
    run_dir = tmp_path / "run"
    assert train(run_dir, "--config-dir", str(user_conf), monkeypatch=monkeypatch,
                 base=MINE) == 0
    capsys.readouterr()
    assert "seed: 3" in (run_dir / ".hydra" / "config.yaml").read_text().splitlines()
    before = snapshot(run_dir)
    assert train(run_dir, "-cd", str(user_conf), monkeypatch=monkeypatch, base=MINE) == 2
    err = err_lines(capsys)
    assert len(err) == 1 and "already holds a run" in err[0], err
    assert snapshot(run_dir) == before


# ------------------------------------------------------------- 2. nothing foreign deleted
@pytest.mark.parametrize("resume", ["resume=true", "resume=false"])
def test_a_folder_that_holds_no_run_is_refused_untouched(tmp_path, resume, monkeypatch,
                                                         capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.tmp").write_text("the user's")
    (folder / ".tmp_build").write_text("the user's too")
    (folder / "data").mkdir()
    before = sorted(p.name for p in folder.rglob("*")), snapshot(folder)
    assert train(folder, resume, monkeypatch=monkeypatch) == 2
    err = err_lines(capsys)
    assert len(err) == 1 and str(folder) in err[0] and "no run" in err[0], err
    assert ".hydra/" in err[0] and "checkpoints/" in err[0]
    assert (sorted(p.name for p in folder.rglob("*")), snapshot(folder)) == before


# ------------------------------------------------------------- 3. a refused sweep job
def test_a_refused_sweep_job_changes_nothing_in_the_finished_run(tmp_path, monkeypatch,
                                                                 capsys):
    sweep = tmp_path / "sweep"
    args = ["-m", f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=job"]
    run_dir = sweep / "job"
    GlobalHydra.instance().clear()
    monkeypatch.setattr(sys, "argv", ["marl.train", *RUN, *args])
    main()
    assert (run_dir / "summary.json").is_file() and (run_dir / "train.log").is_file()
    assert "seed: 0" in (run_dir / ".hydra" / "config.yaml").read_text().splitlines()
    capsys.readouterr()
    before = snapshot(run_dir)
    for changed in (["resume=true", "algo.gamma=0.5"],
                    ["resume=true", "env.width=7", "env.box_weight=1"]):
        GlobalHydra.instance().clear()
        monkeypatch.setattr(sys, "argv", ["marl.train", *RUN, *args, *changed])
        with pytest.raises(SystemExit) as stop:
            main()
        assert stop.value.code == 1  # the sweep's exit: one of its jobs failed
        err = capsys.readouterr().err
        assert str(run_dir) in err and changed[1].split("=")[0] in err, err
        assert snapshot(run_dir) == before, changed  # no new .hydra/, no failed.json
        report = json.loads((sweep / "sweep_summary.json").read_text())
        assert [j["status"] for j in report["jobs"]] == ["refused"], report
        assert changed[1].split("=")[0] in report["jobs"][0]["error"]


# ---------------------------------------------------- 4. a checkpoint nothing verifies
def test_a_headerless_checkpoint_is_refused_unless_allowed(tmp_path, monkeypatch, capsys):
    """Header stripped and 8 bytes flipped: refused in one line naming the option,
    nothing changed; with checkpoint.allow_unverified=true it is loaded (here: found
    broken, the other failure mode, still one line)."""
    run_dir = tmp_path / "run"
    assert train(run_dir, "train.total_env_steps=800", monkeypatch=monkeypatch) == 0
    for p in (run_dir / "checkpoints").glob("*.pt"):
        payload = p.read_bytes().split(b"\n", 1)[1]
        p.write_bytes(payload[:100] + bytes(b ^ 0xFF for b in payload[100:108]) + payload[108:])
    capsys.readouterr()
    before = snapshot(run_dir)
    assert train(run_dir, "resume=true", monkeypatch=monkeypatch) == 2
    err = err_lines(capsys)
    assert len(err) == 1 and "checkpoint.allow_unverified=true" in err[-1], err
    assert snapshot(run_dir) == before


# ------------------------------------------------- 5. rows lost or damaged, found at resume
def _stopped_run(tmp_path, monkeypatch, capsys) -> Path:
    """A run cut at 1,200 of 2,000 env steps (checkpoints at 400, 800, 1200 kept), as a
    killed run leaves it: its lock released, its rows and checkpoints written."""
    run_dir = tmp_path / "run"
    assert train(run_dir, "train.total_env_steps=1200", monkeypatch=monkeypatch) == 0
    (run_dir / "summary.json").unlink()
    capsys.readouterr()
    return run_dir


@pytest.mark.parametrize("damage", ["empty", "deleted", "half"])
def test_a_resume_refuses_when_rows_were_lost(tmp_path, monkeypatch, capsys, damage):
    run_dir = _stopped_run(tmp_path, monkeypatch, capsys)
    metrics = run_dir / "metrics.jsonl"
    lines = metrics.read_text().splitlines(keepends=True)
    if damage == "deleted":
        metrics.unlink()
    else:
        metrics.write_text("" if damage == "empty" else "".join(lines[:len(lines) // 2]))
    before = snapshot(run_dir)
    assert train(run_dir, "resume=true", monkeypatch=monkeypatch) == 2
    err = err_lines(capsys)
    assert len(err) == 1 and "rows were lost" in err[0] and "metrics.jsonl" in err[0], err
    assert snapshot(run_dir) == before


@pytest.mark.parametrize("damage", ["duplicated", "interleaved"])
def test_a_resume_refuses_a_duplicated_row(tmp_path, monkeypatch, capsys, damage):
    """A row written twice (or a second writer's rows among the first's) is reported,
    naming the row, and nothing is changed."""
    run_dir = _stopped_run(tmp_path, monkeypatch, capsys)
    metrics = run_dir / "metrics.jsonl"
    lines = metrics.read_text().splitlines(keepends=True)
    extra = lines[1] if damage == "duplicated" else lines[0]
    metrics.write_text("".join([*lines[:2], extra, *lines[2:]]))
    before = snapshot(run_dir)
    assert train(run_dir, "resume=true", monkeypatch=monkeypatch) == 2
    err = err_lines(capsys)
    assert len(err) == 1 and "row 3 repeats env_steps" in err[0], err
    assert snapshot(run_dir) == before


@pytest.mark.parametrize("bad", ["{}", "123", '{"env_steps": "x"}'])
def test_a_row_that_is_not_a_metrics_row_is_one_line(tmp_path, monkeypatch, capsys, bad):
    run_dir = _stopped_run(tmp_path, monkeypatch, capsys)
    metrics = run_dir / "metrics.jsonl"
    lines = metrics.read_text().splitlines(keepends=True)
    metrics.write_text("".join([*lines[:2], bad + "\n", *lines[2:]]))
    before = snapshot(run_dir)
    assert train(run_dir, "resume=true", monkeypatch=monkeypatch) == 2
    err = err_lines(capsys)
    assert len(err) == 1 and "metrics.jsonl:3 is not a metrics row" in err[0], err
    assert snapshot(run_dir) == before


def test_an_intact_stopped_run_still_resumes(tmp_path, monkeypatch, capsys):
    run_dir = _stopped_run(tmp_path, monkeypatch, capsys)
    assert train(run_dir, "resume=true", "train.total_env_steps=2000",
                 monkeypatch=monkeypatch) == 0
    assert json.loads((run_dir / "summary.json").read_text())["env_steps"] == 2000


# -------------------------------------------------- 6. set-aside files count toward keep
@pytest.mark.parametrize("keep,left", [
    (3, ["ckpt_000000000300.pt", "ckpt_000000000400.pt", "ckpt_000000000500.pt"]),
    (4, ["ckpt_000000000200.pt.corrupt", "ckpt_000000000300.pt", "ckpt_000000000400.pt",
         "ckpt_000000000500.pt"]),
    (1, ["ckpt_000000000500.pt"]),
])
def test_corrupt_files_count_toward_keep_and_go_first(tmp_path, keep, left):
    from marl.io.checkpoint import checkpoint_path, save_checkpoint

    d = tmp_path / "checkpoints"
    d.mkdir()
    for steps in (100, 200):
        checkpoint_path(d, steps).with_suffix(".pt.corrupt").write_bytes(b"broken")
    for steps in (300, 400):
        save_checkpoint(d, steps, {"env_steps": steps}, keep=10)
    save_checkpoint(d, 500, {"env_steps": 500}, keep=keep)
    assert sorted(p.name for p in d.iterdir()) == left


# ----------------------------------------------------- 7. a finished run's damaged summary
@pytest.mark.parametrize("garbage", ["garbage{", "123", ""])
def test_a_damaged_summary_of_a_finished_run_is_one_line(tmp_path, monkeypatch, capsys,
                                                          garbage):
    run_dir = tmp_path / "run"
    assert train(run_dir, "train.total_env_steps=400", monkeypatch=monkeypatch) == 0
    (run_dir / "summary.json").write_text(garbage)
    capsys.readouterr()
    before = snapshot(run_dir)
    assert train(run_dir, "resume=true", "train.total_env_steps=400",
                 monkeypatch=monkeypatch) == 2
    err = err_lines(capsys)
    assert len(err) == 1 and "summary.json is damaged" in err[0], err
    assert snapshot(run_dir) == before  # no failed.json
    (run_dir / "summary.json").unlink()
    assert train(run_dir, "resume=true", "train.total_env_steps=400",
                 monkeypatch=monkeypatch) == 0
    assert json.loads((run_dir / "summary.json").read_text())["env_steps"] == 400


# ------------------------------------------------------- a read-only run directory
def _read_only_filesystem(monkeypatch) -> None:
    """Every create under the run directory fails as on a read-only mount (as root a
    chmod does not stop writes, and a bind mount needs privileges a test lacks)."""
    import errno

    from marl.io import rundir

    def refuse(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    real_open = os.open
    monkeypatch.setattr(rundir.os, "open", lambda p, flags, *a: refuse() if flags & os.O_CREAT
                        else real_open(p, flags, *a))
    monkeypatch.setattr(Path, "mkdir", refuse)


@pytest.mark.parametrize("where", ["existing", "missing"])
def test_train_on_a_read_only_run_directory_is_one_line(tmp_path, where, monkeypatch, capsys):
    folder = tmp_path / "archived"
    folder.mkdir()
    run_dir = folder if where == "existing" else folder / "new_run"
    _read_only_filesystem(monkeypatch)
    assert train(run_dir, "resume=true", monkeypatch=monkeypatch) == 2
    err = err_lines(capsys)
    assert len(err) == 1 and str(run_dir) in err[0], err
    assert "cannot be written" in err[0] and "marl.evaluate" in err[0]
    assert list(folder.iterdir()) == []


# ------------------------------------------------------------------- a lost lock
def _delete_lock_at(monkeypatch, run_dir: Path, env_steps: int, then=None) -> list:
    """Delete the run's lock file once it has collected ``env_steps`` (``then(run_dir)``
    right after: another process taking the directory)."""
    from marl.core.runner import Runner

    collect, taken = Runner.collect, []

    def collect_then_delete(self, policy):
        out = collect(self, policy)
        if self.env_steps >= env_steps and not taken:
            rows = len((run_dir / "metrics.jsonl").read_text().splitlines())
            (run_dir / ".lock").unlink()
            taken.append((rows, then(run_dir) if then else None))
        return out

    monkeypatch.setattr(Runner, "collect", collect_then_delete)
    return taken


def test_a_deleted_lock_file_is_taken_again_and_the_run_goes_on(tmp_path, monkeypatch,
                                                                 capsys):
    run_dir = tmp_path / "run"
    taken = _delete_lock_at(monkeypatch, run_dir, 600)
    assert train(run_dir, monkeypatch=monkeypatch) == 0
    assert taken and (run_dir / "summary.json").exists()
    assert json.loads((run_dir / ".lock").read_text())["pid"] == os.getpid()
    assert any("lock file" in line and "took it again" in line for line in err_lines(capsys))


def test_a_run_whose_directory_was_taken_stops_writing_nothing_more(tmp_path, monkeypatch,
                                                                     capsys):
    run_dir = tmp_path / "run"
    taken = _delete_lock_at(monkeypatch, run_dir, 600, then=hold_lock)
    try:
        assert train(run_dir, monkeypatch=monkeypatch) == 1
        err = err_lines(capsys)
        assert len(err) == 1 and str(run_dir) in err[0], err
        assert f"pid {os.getpid()}" in err[0] and "writes nothing more" in err[0]
        rows_then = taken[0][0]
        assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == rows_then
        assert not (run_dir / "failed.json").exists()
        assert not (run_dir / "summary.json").exists()
    finally:
        if taken:
            os.close(taken[0][1])


# ------------------------------------------------------- a stop signal at startup
@pytest.mark.parametrize("where", ["prepare", "build"])
def test_a_stop_signal_during_startup_is_the_one_line_stop(tmp_path, where, monkeypatch,
                                                           capsys):
    """SIGTERM while the command line is checked (before Hydra) or while the envs and
    networks are built (inside the task): one line, 128 + 15, the directory this process
    made removed again (nothing was written into it)."""
    import signal

    from marl import build as build_mod
    from marl import cli

    target, name = (cli, "claim") if where == "prepare" else (build_mod, "make_vec_env")
    real = getattr(target, name)

    def signalled(*a, **k):
        out = real(*a, **k)
        os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(target, name, signalled)
    run_dir = tmp_path / "run"
    assert train(run_dir, monkeypatch=monkeypatch) == 128 + signal.SIGTERM
    err = err_lines(capsys)
    assert len(err) == 1 and "stopped by SIGTERM during startup" in err[0], err
    assert not run_dir.exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
