"""W&B offline, read back: two jobs of one multirun (basic launcher, one process) each get
their own run -- name, group, job type, resolved config, metrics with ``env_steps`` as
x-axis, credit metrics, eval video -- and the second never logs into the first.

Offline runs keep everything in the run's ``.wandb`` transaction log (``files/`` holds
only media and requirements until ``wandb sync``). The log is W&B's LevelDB-style record
log; the records are ``wandb.proto.wandb_internal_pb2.Record`` protobufs, decoded here
with W&B's own classes after checking each chunk's CRC-32.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from conftest import TINY as BASE

pb = pytest.importorskip("wandb.proto.wandb_internal_pb2")

TINY = [
    *BASE,
    "algo=iac_v",
    "train.eval_every_env_steps=1000",
    "train.log_every_env_steps=500",
    "train.eval_video=true",
    "train.video_max_frames=20",
    "logger.wandb.mode=offline",
]

_BLOCK, _HEADER = 32768, 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def read_wandb_log(path: Path) -> list:
    """Records of a ``.wandb`` file (W&B's datastore format: a 7-byte file header
    ``:W&B`` / 0xBEE1 / version, then 32 KiB blocks of chunks with a 7-byte header
    ``crc32 (of type byte + data), length, type``; a record spans FIRST..LAST chunks)."""
    data = path.read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:_HEADER])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), (ident, magic, version)
    pos, pending, raw = _HEADER, b"", []
    while pos + _HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:  # block trailer padding
            pos += left
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + _HEADER])
        if kind == 0 and length == 0:  # zero padding to the end of the block
            pos += left
            continue
        chunk = data[pos + _HEADER:pos + _HEADER + length]
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF == crc, "bad CRC"
        pos += _HEADER + length
        if kind == _FULL:
            raw.append(chunk)
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            raw.append(pending + chunk)
    records = []
    for r in raw:
        rec = pb.Record()
        rec.ParseFromString(r)
        records.append(rec)
    return records


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def _items(items) -> dict:
    return {_key(i): json.loads(i.value_json) for i in items}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wandb_offline")
    sweep = tmp / "sweep"
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true",
           "WANDB_BASE_URL": "http://127.0.0.1:9"}  # no network: anything online would fail
    env.pop("WANDB_API_KEY", None)
    proc = subprocess.run([sys.executable, "-m", "marl.train", "-m", *TINY, "seed=0,1",
                           f"hydra.sweep.dir={sweep}"], cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (tmp / "sweep.err").write_text(proc.stderr)
    return sweep


def test_each_offline_run_says_where_it_is_and_how_to_upload_it(sweep):
    err = (sweep.parent / "sweep.err").read_text()
    for seed in (0, 1):
        run_dir, _ = _run_of(sweep / f"{seed}_iac_v_s{seed}")
        assert (f"W&B offline run in {run_dir.absolute()}; upload it with: wandb sync "
                f"{run_dir.absolute()}") in err, err[-2000:]


def _run_of(job: Path) -> tuple[Path, list]:
    runs = list((job / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs  # exactly one W&B run per job
    logs = list(runs[0].glob("*.wandb"))
    assert len(logs) == 1
    return runs[0], read_wandb_log(logs[0])


def _of(records, kind: str) -> list:
    return [getattr(r, kind) for r in records if r.WhichOneof("record_type") == kind]


def test_each_job_has_its_own_finished_run_with_its_config(sweep):
    ids = set()
    for seed in (0, 1):
        job = sweep / f"{seed}_iac_v_s{seed}"
        run_dir, records = _run_of(job)
        (run,) = _of(records, "run")
        ids.add(run.run_id)
        assert run_dir.name.endswith(run.run_id)
        assert run.display_name == f"iac_v_boxpush_s{seed}"  # {algo}_{env}_s{seed}
        assert run.run_group == "coma_boxpush"  # the experiment name
        assert run.job_type == "iac_v"  # the algorithm
        assert run.project == "marl"
        config = _items(run.config.update)
        for update in _of(records, "config"):
            config.update(_items(update.update))
        config = {k: v.get("value", v) if isinstance(v, dict) else v for k, v in config.items()}
        # the resolved config: this job's seed and algo, interpolations resolved
        assert config["seed"] == seed
        assert config["name"] == "coma_boxpush"
        assert config["algo"]["advantage"] == "iac_v"
        assert config["algo"]["actor_lr"] == pytest.approx(2e-3)
        assert config["env"]["name"] == "boxpush"
        assert "${" not in json.dumps(config)
        (exit_rec,) = _of(records, "exit")  # finished cleanly
        assert exit_rec.exit_code == 0
    assert len(ids) == 2


def test_metrics_use_env_steps_as_x_axis_and_stay_in_their_run(sweep):
    for seed in (0, 1):
        job = sweep / f"{seed}_iac_v_s{seed}"
        run_dir, records = _run_of(job)
        metrics = _of(records, "metric")
        assert any(m.name == "env_steps" for m in metrics)
        assert any(m.glob_name == "*" and m.step_metric == "env_steps" for m in metrics)
        history = [_items(h.item) for h in _of(records, "history")]
        assert history and all("env_steps" in h for h in history)
        keys = set().union(*history)
        for k in ("train/return", "eval/return_mean", "eval/success_rate", "loss/actor",
                  "loss/critic_local_v", "credit/robot_0/advantage_mean",
                  "credit/robot_1/idle_rate", "eval/credit/robot_0/idle_rate",
                  "perf/steps_per_s", "eval/video/_type", "plots/learning_curve/_type"):
            assert k in keys, k
        # exactly this job's rows: the env_steps of its metrics.jsonl, nothing from the other
        jsonl = [json.loads(x) for x in (job / "metrics.jsonl").read_text().splitlines()]
        logged = sorted(h["env_steps"] for h in history if "train/return" in h
                        or "eval/return_mean" in h or "loss/actor" in h)
        assert logged == sorted(r["env_steps"] for r in jsonl)
        summary = {}
        for s in _of(records, "summary"):
            summary.update(_items(s.update))
        final = json.loads((job / "summary.json").read_text())
        assert summary["eval/success_rate"] == pytest.approx(final["eval/success_rate"])
        assert summary["seed"] == seed and summary["env_steps"] == 2000
        # the evaluation GIFs (one per evaluation) as W&B videos, files kept in the run
        videos = [h for h in history if "eval/video/_type" in h]
        assert len(videos) == 2 and all(v["eval/video/_type"] == "video-file" for v in videos)
        for v in videos:
            assert (run_dir / "files" / v["eval/video/path"]).read_bytes()[:6] == b"GIF89a"
