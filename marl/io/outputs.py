"""A finished run's outputs: ``summary.json`` (with provenance) and the plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from marl.config import Config
from marl.io import provenance
from marl.io.errors import disk_full_names
from marl.io.files import read_jsonl, write_json_atomic
from marl.io.metrics import peak_rss_mib
from marl.io.plots import make_plots
from marl.io.sinks import Sinks


def write_outputs(run_dir: Path, cfg: Config, sinks: Sinks, env_steps: int, wall: float,
                  last: dict[str, Any]) -> dict[str, Any]:
    """Write ``summary.json`` from the last row's ``eval/`` and ``loss/`` metrics and
    draw the plots; returns the summary."""
    summary = {
        "env_steps": env_steps,
        "wall_time_s": wall,
        "steps_per_s": env_steps / max(wall, 1e-9),
        "peak_rss_mib": peak_rss_mib(),
        **{k: v for k, v in last.items() if k.startswith(("eval/", "loss/"))},
        "name": cfg.name,
        "algo": cfg.algo.name,
        "seed": cfg.seed,
        "provenance": provenance.provenance(),
    }
    write_json_atomic(run_dir / "summary.json", summary)
    sinks.summary(summary)
    if cfg.logger.plots:
        with disk_full_names(run_dir / "plots"):
            plots = make_plots(run_dir, list(cfg.logger.plots))
        for name, path in plots.items():
            sinks.log_image(f"plots/{name}", path, env_steps)
    return summary


def check_summary(run_dir: Path) -> None:
    """A finished run's ``summary.json``, if there, is a JSON object: a damaged one is a
    one-line ValueError (resume refuses; deleting it makes the resume write it again)."""
    path = run_dir / "summary.json"
    if not path.exists():
        return
    try:
        ok = isinstance(json.loads(path.read_text()), dict)
    except (ValueError, UnicodeDecodeError):
        ok = False
    if not ok:
        raise ValueError(f"{path} is damaged (not a JSON object); delete it and resume=true "
                         "writes it again from metrics.jsonl")


def recreate_outputs(run_dir: Path, cfg: Config, sinks: Sinks, env_steps: int,
                     wall: float) -> dict[str, Any]:
    """A finished run resumed: its summary; summary and plots are written again (from
    the last evaluated row of ``metrics.jsonl``) if either is missing."""
    path = run_dir / "summary.json"
    if path.exists() and ((run_dir / "plots").is_dir() or not cfg.logger.plots):
        return json.loads(path.read_text())
    metrics = run_dir / "metrics.jsonl"
    rows = read_jsonl(metrics) if metrics.exists() else []
    last = next((r for r in reversed(rows) if any(k.startswith("eval/") for k in r)), {})
    return write_outputs(run_dir, cfg, sinks, env_steps, wall, last)
