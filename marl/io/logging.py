"""One logger fan-out: metrics.jsonl (always), the chosen sinks (:mod:`marl.io.sinks`:
W&B, never fatal; TensorBoard; CSV), a progress bar.

Metrics are flat dicts with namespaced keys (``train/``, ``eval/``, ``loss/``,
``credit/``, ``perf/``) and one x-axis, ``env_steps``, present in every row.
"""

from __future__ import annotations

import json
import math
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from marl.config import WandbConfig
from marl.io.errors import disk_full_names
from marl.io.files import read_jsonl


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else (1e308 if v > 0 else -1e308)
    return v


class JsonlSink:
    """Appends one JSON object per log step to ``metrics.jsonl``, one ``write`` per row.

    A row that cannot be written whole (a full disk) is cut back off the file, so the
    file ends with the last complete row, and :class:`DiskFullError` names the file.
    Readers of a live run use :func:`marl.io.files.read_jsonl` (a torn last line, from
    a kill mid-write, is left out; a resume cuts it off).
    """

    def __init__(self, path: Path):
        self.path = path
        self.rows = len(read_jsonl(path)) if path.is_file() else 0
        """Complete rows in the file (a checkpoint records it: a resume finds lost rows)."""
        with disk_full_names(path):
            self.fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def log(self, row: dict[str, Any]) -> None:
        data = (json.dumps({k: _jsonable(v) for k, v in row.items()}) + "\n").encode()
        start = os.fstat(self.fd).st_size
        try:
            with disk_full_names(self.path):
                view = memoryview(data)
                while view:
                    view = view[os.write(self.fd, view):]
        except BaseException:
            os.ftruncate(self.fd, start)  # shrinking needs no space
            raise
        self.rows += 1

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def wandb_mode(mode: str) -> str:
    """``auto`` -> online when an API key is in the environment, else offline."""
    if mode != "auto":
        return mode
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


class WandbSink:
    """A W&B run that can never stop training: any failure warns once and disables it."""

    def __init__(self, cfg: WandbConfig, run_dir: Path, *, name: str, group: str,
                 job_type: str, config: dict[str, Any], run_id: str | None = None):
        self.run = None
        self.mode = wandb_mode(cfg.mode)
        if self.mode == "disabled":
            return
        try:
            import wandb

            self.run = wandb.init(
                project=cfg.project, entity=cfg.entity, group=cfg.group or group,
                job_type=job_type, name=name, tags=list(cfg.tags), config=config,
                dir=str(run_dir), mode=self.mode, id=run_id, resume="allow",
                reinit="finish_previous",
                settings=wandb.Settings(console="off", silent=True),
            )
            self.run.define_metric("env_steps")
            self.run.define_metric("*", step_metric="env_steps")
        except Exception as e:  # noqa: BLE001 - W&B must never stop training
            self._fail("init", e)

    @property
    def run_id(self) -> str | None:
        return None if self.run is None else self.run.id

    def _fail(self, what: str, e: Exception) -> None:
        warnings.warn(f"W&B {what} failed ({type(e).__name__}: {e}); W&B logging is off "
                      "for this run, metrics.jsonl still has everything", stacklevel=3)
        self.run = None

    def _call(self, what: str, fn: Callable[[Any], Any]) -> None:
        """``fn(run)`` unless W&B is off; any failure warns once and turns W&B off."""
        if self.run is None:
            return
        try:
            fn(self.run)
        except Exception as e:  # noqa: BLE001 - W&B must never stop training
            self._fail(what, e)

    def log(self, row: dict[str, Any]) -> None:
        self._call("log", lambda run: run.log(row))

    def log_video(self, key: str, path: Path, env_steps: int) -> None:
        """A GIF/MP4 file as a W&B video at ``env_steps``."""
        self._call("video log", lambda run: run.log(
            {key: _wandb().Video(str(path)), "env_steps": env_steps}))

    def log_image(self, key: str, path: Path, env_steps: int) -> None:
        """A PNG file as a W&B image at ``env_steps``."""
        self._call("image log", lambda run: run.log(
            {key: _wandb().Image(str(path)), "env_steps": env_steps}))

    def summary(self, values: dict[str, Any]) -> None:
        self._call("summary", lambda run: run.summary.update(values))

    def close(self, exit_code: int = 0) -> None:
        """Finish the run; an offline run says where it is and how to upload it."""
        offline = self.run is not None and self.mode == "offline"
        sync_dir = getattr(getattr(self.run, "settings", None), "sync_dir", None)
        self._call("finish", lambda run: run.finish(exit_code=exit_code))
        if offline and self.run is not None and sync_dir:
            print(f"W&B offline run in {sync_dir}; upload it with: wandb sync {sync_dir}",
                  file=sys.stderr)
        self.run = None


def _wandb() -> Any:
    import wandb

    return wandb


class Progress:
    """A tqdm bar over env steps with return / success / steps-per-second."""

    def __init__(self, total: int, initial: int, enabled: bool, desc: str):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", unit_scale=True,
                            desc=desc, file=sys.stderr, dynamic_ncols=True,
                            mininterval=1.0, smoothing=0.1)

    def update(self, env_steps: int, postfix: dict[str, float]) -> None:
        if self.bar is None:
            return
        self.bar.update(env_steps - self.bar.n)
        self.bar.set_postfix({k: f"{v:.3g}" for k, v in postfix.items()}, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Logger:
    """Fan-out of metric rows to every sink; ``env_steps`` is the x-axis of every row."""

    def __init__(self, run_dir: Path, sinks: Any, progress: Progress):
        self.jsonl = JsonlSink(run_dir / "metrics.jsonl")
        self.sinks, self.progress = sinks, progress
        self.guard: Callable[[], None] = lambda: None
        """Called before every row: the run directory is still this process's
        (:meth:`marl.io.rundir.RunDir.check_held`, wired by :class:`marl.lifecycle.Job`)."""

    def log(self, env_steps: int, metrics: dict[str, float]) -> None:
        self.guard()
        row = {"env_steps": env_steps, **metrics}
        self.jsonl.log(row)  # first: a sink may read the file (metrics.csv)
        self.sinks.log(row)
        shown = {"ret": metrics.get("train/return"), "succ": metrics.get("train/success"),
                 "eval": metrics.get("eval/success_rate", metrics.get("eval/return_mean")),
                 "sps": metrics.get("perf/steps_per_s")}
        self.progress.update(env_steps, {k: v for k, v in shown.items() if v is not None})

    def close(self, exit_code: int = 0) -> None:
        self.progress.close()
        self.jsonl.close()
        self.sinks.close(exit_code)
