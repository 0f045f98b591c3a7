"""The ``logger.backends`` sinks besides metrics.jsonl: CSV and TensorBoard hold exactly
the rows of metrics.jsonl, after a kill and a resume as well; a bad backend is refused."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY

from marl.io.checkpoint import list_checkpoints
from marl.io.sinks import TensorBoardSink
from marl.schema import ConfigError

RUN = [*TINY, "train.total_env_steps=24000", "train.log_every_env_steps=400",
       "train.eval_every_env_steps=4000", "checkpoint.every_env_steps=2000",
       "checkpoint.keep=20", "logger.plots=[learning_curve]", "logger.wandb.mode=disabled",
       "logger.backends=[csv,tensorboard]"]


def train(run_dir: Path, extra: list[str] = ()) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "marl.train", *RUN, *extra,
                             f"hydra.run.dir={run_dir}"], cwd=run_dir.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def jsonl_rows(run_dir: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def resumed(tmp_path_factory) -> Path:
    """A run killed (SIGKILL) after its second checkpoint, with rows past it, resumed."""
    run_dir = tmp_path_factory.mktemp("sinks") / "run"
    proc = train(run_dir)
    deadline = time.time() + 300
    while len(list_checkpoints(run_dir / "checkpoints")) < 2:
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read()[-2000:]
        time.sleep(0.005)
    time.sleep(0.5)  # rows past the checkpoint, which the resume cuts back
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    done = train(run_dir, ["resume=true"])
    _, err = done.communicate(timeout=600)
    assert done.returncode == 0, err[-2000:]
    assert "resumed from" in err
    return run_dir


def test_csv_is_metrics_jsonl_as_a_table(resumed):
    rows = jsonl_rows(resumed)
    with (resumed / "metrics.csv").open(newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(rows) and len(rows) >= 40
    columns = set().union(*rows)
    assert list(table[0])[0] == "env_steps" and set(table[0]) == columns
    for row, line in zip(rows, table, strict=True):
        assert {k for k, v in line.items() if v != ""} == set(row)
        for k, v in row.items():
            assert float(line[k]) == pytest.approx(float(v), rel=1e-12), (k, row["env_steps"])


def test_tensorboard_has_every_row_once_after_the_resume(resumed):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(resumed / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    rows = jsonl_rows(resumed)
    for key in ("train/return", "eval/success_rate", "loss/critic"):
        want = [(r["env_steps"], r[key]) for r in rows if r.get(key) is not None]
        got = [(e.step, e.value) for e in acc.Scalars(key)]
        assert [s for s, _ in got] == [s for s, _ in want], key  # none twice, none lost
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6), key
    assert "plots/learning_curve" in acc.Tags()["images"]


def test_an_unknown_backend_is_one_line_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "marl.train", *TINY, "logger.backends=[tb]",
                           f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: logger.backends = 'tb' is invalid: choose one of ['wandb', 'tensorboard', "
        "'csv'] or a plugin module:attr")
    assert not (tmp_path / "run").exists()


def test_tensorboard_without_its_package_is_refused_naming_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(ConfigError, match=r"pip install 'marl\[tensorboard\]'"):
        TensorBoardSink.check()


def test_csv_follows_metrics_jsonl_cut_back_at_a_resume(tmp_path):
    """Rows a resume cuts off metrics.jsonl leave metrics.csv too, before the next row."""
    from marl.io.logging import JsonlSink
    from marl.io.sinks import CsvSink, SinkOpen

    opened = SinkOpen(None, tmp_path, "n", "g", "j", {}, None, 0)
    jsonl = JsonlSink(tmp_path / "metrics.jsonl")
    sink = CsvSink(opened)
    for step in (10, 20, 30):
        jsonl.log({"env_steps": step, "train/return": step / 10})
        sink.log({"env_steps": step, "train/return": step / 10})
    jsonl.close()
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "metrics.jsonl").write_text("".join(lines[:2]))  # the resume's cut
    jsonl, sink = JsonlSink(tmp_path / "metrics.jsonl"), CsvSink(opened)
    jsonl.log({"env_steps": 30, "train/return": 9.0})
    sink.log({"env_steps": 30, "train/return": 9.0})
    jsonl.close()
    assert (tmp_path / "metrics.csv").read_text().splitlines() == [
        "env_steps,train/return", "10,1.0", "20,2.0", "30,9.0"]
