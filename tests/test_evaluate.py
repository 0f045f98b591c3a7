"""``python -m marl.evaluate``: greedy evaluation of a run from its newest checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import QUIET, TINY_Q
from conftest import TINY as BASE

from marl import evaluate as ev
from marl.io.checkpoint import list_checkpoints

TINY = [*BASE, *QUIET, "train.eval_every_env_steps=0", "train.log_every_env_steps=1000"]


def _env() -> dict[str, str]:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    env.pop("WANDB_API_KEY", None)
    return env


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("evaluate")
    run = tmp / "run"
    proc = subprocess.run([sys.executable, "-m", "marl.train", *TINY, f"hydra.run.dir={run}"],
                          cwd=tmp, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run


def test_cli_writes_summary_and_gif(run_dir):
    proc = subprocess.run([sys.executable, "-m", "marl.evaluate", f"run_dir={run_dir}",
                           "episodes=7", "video=true"], env=_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = run_dir / "eval_000000002000.json"
    assert proc.stdout.strip().splitlines()[-1] == f"evaluation: {out}"
    summary = json.loads(out.read_text())
    assert summary["env_steps"] == 2000 and summary["episodes"] == 7
    assert summary["eval/episodes"] == 7
    assert summary["checkpoint"].endswith("ckpt_000000002000.pt")
    assert 0.0 <= summary["eval/success_rate"] <= 1.0
    assert (summary["name"], summary["algo"], summary["env"]) == ("coma_boxpush", "coma",
                                                                  "boxpush")
    for k in ("eval/return_mean", "eval/length_mean", "eval/credit/robot_0/idle_rate"):
        assert k in summary, k
    gif = Path(summary["video"])
    assert gif.parent == run_dir / "videos" and gif.read_bytes()[:6] == b"GIF89a"


def test_same_seed_same_result_and_explicit_checkpoint(run_dir):
    ckpt = list_checkpoints(run_dir / "checkpoints")[-1]
    a = ev.run(ev.parse_args([f"run_dir={run_dir}", "episodes=5", "seed=11"]))
    b = ev.run(ev.parse_args([f"run_dir={run_dir}", "episodes=5", "seed=11",
                              f"checkpoint={ckpt}"]))
    for k in ("eval/return_mean", "eval/length_mean", "eval/success_rate"):
        assert a[k] == b[k]
    assert a["video"] is None and a["seed"] == 11


@pytest.mark.parametrize("args, message", [
    (["episodes=3"], "run_dir is required"),
    (["run_dir=/nonexistent/run"], "does not exist"),
    (["run_dir={run}", "episods=3"], "unknown key(s) ['episods']"),
    (["run_dir={run}", "episodes=0"], "episodes='0' is invalid"),
    (["run_dir={run}", "video=maybe"], "use true or false"),
    (["run_dir={run}", "oops"], "is not key=value"),
])
def test_bad_arguments_are_one_line_errors(run_dir, args, message, capsys):
    args = [a.format(run=run_dir) for a in args]
    assert ev.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert "Traceback" not in err


def test_not_a_run_dir_no_checkpoint_and_corrupt_checkpoint(run_dir, tmp_path, capsys):
    assert ev.main([f"run_dir={tmp_path}"]) == 2
    assert "not a run directory" in capsys.readouterr().err
    # a run directory without checkpoints (e.g. killed before the first one)
    bare = tmp_path / "bare"
    shutil.copytree(run_dir / ".hydra", bare / ".hydra")
    assert ev.main([f"run_dir={bare}"]) == 2
    assert "no checkpoint in" in capsys.readouterr().err
    # a corrupt newest checkpoint
    broken = tmp_path / "broken"
    shutil.copytree(run_dir / ".hydra", broken / ".hydra")
    (broken / "checkpoints").mkdir()
    (broken / "checkpoints" / "ckpt_000000009999.pt").write_bytes(b"truncated garbage")
    assert ev.main([f"run_dir={broken}"]) == 2
    err = capsys.readouterr().err
    assert "no header line" in err and "ckpt_000000009999.pt" in err
    # a checkpoint of another algorithm (different critics) does not fit the run
    other = tmp_path / "other"
    shutil.copytree(run_dir / ".hydra", other / ".hydra")
    cfg = (other / ".hydra" / "config.yaml").read_text()
    (other / ".hydra" / "config.yaml").write_text(cfg.replace("advantage: coma",
                                                              "advantage: central_v"))
    shutil.copytree(run_dir / "checkpoints", other / "checkpoints")
    assert ev.main([f"run_dir={other}"]) == 2
    err = capsys.readouterr().err
    assert "does not match the config stored in checkpoint" in err and "algo.advantage" in err


def test_value_decomposition_run_evaluates_with_any_number_of_episodes(tmp_path):
    """A VDN run's checkpoint holds its replay buffer, laid out for its 8 train envs:
    evaluation loads the networks only, so 5 episodes (5 envs) work."""
    run = tmp_path / "vdn"
    proc = subprocess.run([sys.executable, "-m", "marl.train", *TINY_Q, "algo=vdn",
                           "train.total_env_steps=400", "train.eval_every_env_steps=0",
                           f"hydra.run.dir={run}"],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = ev.run(ev.parse_args([f"run_dir={run}", "episodes=5"]))
    assert summary["algo"] == "vdn" and summary["eval/episodes"] == 5


def test_a_run_in_use_is_refused_naming_its_holder(run_dir, capsys):
    """Evaluation writes into the run directory: it takes the run's lock, so a live run
    (here: this process holding the lock) makes it stop at once, naming the holder."""
    from marl.io.rundir import RunDir

    holder = RunDir(run_dir, [])
    holder.lock()
    try:
        assert ev.main([f"run_dir={run_dir}", "episodes=2"]) == 2
    finally:
        holder.release()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"in use by pid {os.getpid()}" in err[0], err


def test_a_corrupt_newest_checkpoint_is_skipped_for_an_intact_one(run_dir, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns(".lock"))
    (copy / "checkpoints" / "ckpt_000000009999.pt").write_bytes(b"garbage")
    summary = ev.run(ev.parse_args([f"run_dir={copy}", "episodes=2"]))
    assert summary["checkpoint"].endswith("ckpt_000000002000.pt")
    assert "skipped ckpt_000000009999.pt" in capsys.readouterr().err


def test_a_config_changed_after_the_run_is_refused_naming_the_keys(run_dir, tmp_path, capsys):
    """A sweep job's .hydra/config.yaml rewritten with other values (here the env's
    episode limit, which the networks would still fit) must not be evaluated: the
    config stored in the checkpoint is compared."""
    import yaml

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns(".lock"))
    path = copy / ".hydra" / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["env"]["max_steps"] = cfg["env"]["max_steps"] + 7
    path.write_text(yaml.safe_dump(cfg))
    before = sorted(p.name for p in copy.iterdir())
    assert ev.main([f"run_dir={copy}", "episodes=2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "env.max_steps" in err[0] and "does not match" in err[0], err
    assert sorted(p.name for p in copy.iterdir()) == before


def test_a_read_only_run_is_evaluated_without_writing(run_dir, tmp_path, capsys, monkeypatch):
    """On a read-only filesystem nothing can be created: the probe says so, and the run
    is evaluated without its lock and without an eval_*.json (a real read-only mount
    needs privileges a test does not take: the probe is forced here)."""
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns(".lock", "eval_*.json"))
    monkeypatch.setattr(ev, "writable", lambda d: False)
    before = {p: p.stat().st_mtime_ns for p in copy.rglob("*")}
    assert ev.main([f"run_dir={copy}", "episodes=2"]) == 0
    out = capsys.readouterr().out
    assert '"episodes": 2' in out and "not written" in out
    assert {p: p.stat().st_mtime_ns for p in copy.rglob("*")} == before


def test_the_write_probe_reads_a_read_only_filesystem(tmp_path, monkeypatch):
    import errno
    import tempfile

    assert ev.writable(tmp_path)

    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    assert not ev.writable(tmp_path)
