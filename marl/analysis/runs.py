"""Run directories read back into records, merged with an earlier ``results.json`` and
grouped by experiment and algorithm.

A run directory holds ``.hydra/config.yaml`` (the composed config), ``metrics.jsonl``
(one JSON row per log step, ``eval/*`` fields on evaluation rows) and, once it has
finished, ``summary.json``. A record is a plain dict (it goes into ``results.json``):
``dir, name, algo, seed, finished, curve`` (``[env_steps, eval/success_rate,
eval/return_mean]`` per evaluation), ``steps_to_threshold`` and, for a finished run,
``env_steps, success, return, min_push_share, wall_time_s, produced`` (the UTC date its
``summary.json`` was written).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from marl.io.files import read_jsonl  # noqa: F401 - the scripts' reader of metrics.jsonl

Record = dict[str, Any]
Grouped = dict[str, dict[str, list[Record]]]


def eval_curve(path: Path, metric: str) -> tuple[list[int], list[float]]:
    """(env steps, values) of ``metric`` over the rows of a ``metrics.jsonl`` that have it."""
    pts = [(r["env_steps"], r[metric]) for r in read_jsonl(path) if r.get(metric) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def _finished_fields(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "summary.json"
    s = json.loads(path.read_text())
    shares = [v for k, v in s.items()
              if k.startswith("eval/credit/") and k.endswith("/push_share")]
    success = s.get("eval/success_rate")
    return {
        "finished": True, "env_steps": s.get("env_steps"), "success": success,
        "return": s.get("eval/return_mean"),
        "min_push_share": min(shares) if shares else (0.0 if success else None),
        "wall_time_s": s.get("wall_time_s"),
        "produced": datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
        .strftime("%Y-%m-%d"),
    }


def read_run(run_dir: Path, threshold: float) -> Record:
    """One run's record: its config's name, algorithm and seed, its eval curve, the first
    evaluation at or above ``threshold`` success and, once finished, its summary."""
    cfg = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    run: Record = {"dir": str(run_dir), "name": cfg.get("name"), "algo": cfg["algo"]["name"],
                   "seed": cfg.get("seed"), "finished": False, "curve": []}
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        run["curve"] = [(r["env_steps"], r["eval/success_rate"], r.get("eval/return_mean"))
                        for r in read_jsonl(metrics) if r.get("eval/success_rate") is not None]
    run["steps_to_threshold"] = next(
        (s for s, succ, _ in run["curve"] if succ >= threshold), None)
    if (run_dir / "summary.json").is_file():
        run.update(_finished_fields(run_dir))
    return run


def find_runs(sweep_dirs: list[Path], threshold: float) -> list[Record]:
    """Every run below ``sweep_dirs`` (a directory holding ``.hydra/config.yaml``);
    ValueError for a sweep directory that does not exist."""
    runs = []
    for d in sweep_dirs:
        if not d.is_dir():
            raise ValueError(f"sweep directory {d} does not exist")
        for cfg in sorted(d.glob("**/.hydra/config.yaml")):
            runs.append(read_run(cfg.parent.parent, threshold))
    return runs


def merge_previous(runs: list[Record], previous: Path, threshold: float,
                   produced: str = "unknown") -> list[Record]:
    """``runs`` plus the finished records of an earlier ``results.json`` that no run in
    ``runs`` replaces (same experiment, algorithm and seed). The earlier file must have
    used the same threshold (its steps-to-threshold are taken as they are; ValueError
    if not). Records without a ``produced`` date get ``produced``."""
    data = json.loads(previous.read_text())
    if data.get("threshold") != threshold:
        raise ValueError(f"{previous} was aggregated at threshold "
                         f"{data.get('threshold')}, not {threshold}: its steps to threshold "
                         "cannot be merged")
    have = {(r["name"], r["algo"], r["seed"]) for r in runs}
    kept = []
    for r in data["runs"]:
        if r.get("finished") and (r["name"], r["algo"], r["seed"]) not in have:
            r = {"curve": [], **r, "merged_from": str(previous)}
            r.setdefault("produced", produced)
            kept.append(r)
    return runs + kept


def collect_runs(sweep_dirs: list[Path], threshold: float, previous: Path | None = None,
                 previous_produced: str = "unknown") -> list[Record]:
    """The runs under ``sweep_dirs`` plus, with ``previous``, the earlier records that no
    run on disk replaces (:func:`merge_previous`)."""
    runs = find_runs(sweep_dirs, threshold)
    if previous is not None:
        runs = merge_previous(runs, previous, threshold, previous_produced)
    return runs


def group(runs: list[Record]) -> Grouped:
    """experiment -> algorithm -> finished runs (sorted by seed)."""
    out: Grouped = defaultdict(lambda: defaultdict(list))
    for r in runs:
        if r["finished"]:
            out[r["name"]][r["algo"]].append(r)
    for algos in out.values():
        for rs in algos.values():
            rs.sort(key=lambda r: r["seed"])
    return out


def merged_note(runs: list[Record]) -> str:
    """"; N of them merged from an earlier results.json" for a header, or ""."""
    n = sum(1 for r in runs if "merged_from" in r)
    return f"; {n} of them merged from an earlier results.json" if n else ""


def add_previous_args(p: argparse.ArgumentParser) -> None:
    """``--previous FILE`` and ``--previous-produced DATE`` (see :func:`merge_previous`)."""
    p.add_argument("--previous", type=Path, default=None,
                   help="an earlier results.json whose runs are merged")
    p.add_argument("--previous-produced", default="unknown",
                   help="'produced' of merged records that have none (e.g. their date)")
