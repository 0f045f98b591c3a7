"""Where metric rows go besides ``metrics.jsonl``: the table ``logger.backends`` chooses
from (:data:`SINKS`: ``wandb``, ``tensorboard``, ``csv``, or a plugin ``module:attr``).

A row is a class made with :class:`SinkOpen` (what it may need of the run) that has the
:class:`Sink` methods. ``metrics.jsonl`` is written first and always
(:class:`marl.io.logging.JsonlSink`); a W&B failure never stops training (it warns
and W&B is off for the run).
"""

from __future__ import annotations

import csv
import importlib.util
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from marl.io.files import read_jsonl
from marl.schema import ConfigError


@dataclass(frozen=True)
class SinkOpen:
    """What a sink may need of its run, when the trainer opens it."""

    logger: Any
    """The run's ``logger`` config (:class:`marl.config.LoggerConfig`)."""
    run_dir: Path
    """The run directory, claimed: ``metrics.csv`` and ``tensorboard/`` are written
    there, and the W&B run's files."""
    name: str
    """The run's display name (``<algo>_<env>_s<seed>``)."""
    group: str
    """The experiment's name."""
    job_type: str
    """The algorithm's name."""
    config: dict[str, Any]
    """The composed config, resolved, with the provenance."""
    run_id: str | None
    """The W&B run id a resumed run continues; None for a fresh run."""
    resumed_at: int
    """The env step a resumed run continues from (0 for a fresh run): a sink drops what
    it holds past it (an interrupted run's rows after its checkpoint)."""


class Sink(Protocol):
    """One backend. ``log`` gets every row (``env_steps`` in each); images and videos
    are files the run wrote; ``summary`` the final values; ``close`` once, at the end."""

    def log(self, row: dict[str, Any]) -> None: ...

    def log_image(self, key: str, path: Path, env_steps: int) -> None: ...

    def log_video(self, key: str, path: Path, env_steps: int) -> None: ...

    def summary(self, values: dict[str, Any]) -> None: ...

    def close(self, exit_code: int = 0) -> None: ...


class CsvSink:
    """``metrics.csv``: ``metrics.jsonl`` as one table, a column per metric (empty where
    a row lacks it), ``env_steps`` first. A row with a new metric rewrites the file with
    the wider header (atomically, from ``metrics.jsonl``); any other row is appended.
    Opening rebuilds it from ``metrics.jsonl``, so a resumed run's table is cut back with
    the rows."""

    FILE = "metrics.csv"

    def __init__(self, opened: SinkOpen):
        self.path = opened.run_dir / self.FILE
        self.jsonl = opened.run_dir / "metrics.jsonl"
        self.columns: list[str] = []
        self._rewrite()

    def _rewrite(self) -> None:
        rows = read_jsonl(self.jsonl) if self.jsonl.is_file() else []
        seen = dict.fromkeys(["env_steps"])
        for row in rows:
            seen.update(dict.fromkeys(row))
        self.columns = list(seen)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, self.columns, restval="")
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.path)

    def log(self, row: dict[str, Any]) -> None:
        if not set(row) <= set(self.columns):
            self._rewrite()  # metrics.jsonl holds this row already
            return
        buf = io.StringIO()
        csv.DictWriter(buf, self.columns, restval="").writerow(row)
        with self.path.open("a", newline="") as f:
            f.write(buf.getvalue())

    def log_image(self, key: str, path: Path, env_steps: int) -> None:
        pass

    def log_video(self, key: str, path: Path, env_steps: int) -> None:
        pass

    def summary(self, values: dict[str, Any]) -> None:
        pass  # summary.json has it

    def close(self, exit_code: int = 0) -> None:
        pass


class TensorBoardSink:
    """TensorBoard event files under ``tensorboard/``: every numeric metric a scalar at
    ``env_steps``, the plots as images, the summary as text. A resumed run purges the
    events after its checkpoint's step (``SummaryWriter(purge_step=...)``). Videos stay W&B's
    (TensorBoard's video needs moviepy). Needs the ``tensorboard`` extra."""

    DIR = "tensorboard"

    @staticmethod
    def check() -> None:
        if importlib.util.find_spec("tensorboard") is None:
            raise ConfigError("logger.backends = 'tensorboard' needs the tensorboard package: "
                              "pip install 'marl[tensorboard]'")

    def __init__(self, opened: SinkOpen):
        from torch.utils.tensorboard import SummaryWriter

        # the row at the checkpoint's own step was logged before the checkpoint: kept
        self.writer = SummaryWriter(str(opened.run_dir / self.DIR),
                                    purge_step=opened.resumed_at + 1 if opened.resumed_at else None)

    def log(self, row: dict[str, Any]) -> None:
        step = int(row["env_steps"])
        for k, v in row.items():
            if k != "env_steps" and isinstance(v, (int, float)) and not isinstance(v, bool):
                self.writer.add_scalar(k, v, step)

    def log_image(self, key: str, path: Path, env_steps: int) -> None:
        import imageio.v3 as iio

        self.writer.add_image(key, iio.imread(path)[..., :3], env_steps, dataformats="HWC")

    def log_video(self, key: str, path: Path, env_steps: int) -> None:
        pass

    def summary(self, values: dict[str, Any]) -> None:
        lines = [f"| {k} | {v} |" for k, v in sorted(values.items())]
        self.writer.add_text("summary", "\n".join(["| key | value |", "|---|---|", *lines]))

    def close(self, exit_code: int = 0) -> None:
        self.writer.close()


def _wandb(opened: SinkOpen) -> Sink:
    from marl.io.logging import WandbSink

    return WandbSink(opened.logger.wandb, opened.run_dir, name=opened.name,
                     group=opened.group, job_type=opened.job_type, config=opened.config,
                     run_id=opened.run_id)


SINKS: dict[str, Any] = {"wandb": _wandb, "tensorboard": TensorBoardSink, "csv": CsvSink}
"""``logger.backends`` rows: name -> ``make(SinkOpen) -> Sink``; a row may have a
``check()`` that refuses the run at config time (a missing extra)."""


class Sinks:
    """The chosen backends as one: each call goes to every sink in order. ``run_id`` is
    the W&B run's (a checkpoint keeps it, so a resumed run continues the same W&B run)."""

    def __init__(self, sinks: list[Sink]):
        self.sinks = sinks

    @property
    def run_id(self) -> str | None:
        return next((s.run_id for s in self.sinks if getattr(s, "run_id", None)), None)

    def log(self, row: dict[str, Any]) -> None:
        for s in self.sinks:
            s.log(row)

    def log_image(self, key: str, path: Path, env_steps: int) -> None:
        for s in self.sinks:
            s.log_image(key, path, env_steps)

    def log_video(self, key: str, path: Path, env_steps: int) -> None:
        for s in self.sinks:
            s.log_video(key, path, env_steps)

    def summary(self, values: dict[str, Any]) -> None:
        for s in self.sinks:
            s.summary(values)

    def close(self, exit_code: int = 0) -> None:
        for s in self.sinks:
            s.close(exit_code)


def open_sinks(opened: SinkOpen) -> Sinks:
    """The backends ``logger.backends`` names, opened (checked at config time)."""
    from marl.schema import lookup

    return Sinks([lookup(SINKS, name, "logger.backends")(opened)
                  for name in opened.logger.backends])
