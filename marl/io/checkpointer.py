"""The checkpointer of one run: saving its state, resuming from it, starting from another
run's networks (``init_from``).

What a state holds is the trainer's (:meth:`marl.train.Trainer.state`); how it is written
(atomically, checksummed, the last ``keep`` kept) is :mod:`marl.io.checkpoint`'s. This
class is the policy between them: which checkpoint a resume takes (the newest intact
one; a broken newer one is named and set aside as ``.corrupt``, or refused with
``checkpoint.strict=true``), that it comes from the same experiment, and that the
metrics rows after it are redone.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marl.config import Config, ConfigError
from marl.io import provenance, resume
from marl.io.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    load_newest,
    save_checkpoint,
    set_aside,
)
from marl.io.files import cut_jsonl, read_jsonl
from marl.io.outputs import check_summary


@dataclass
class Restored:
    """Where a resumed run continues: its counters and its W&B run."""

    env_steps: int = 0  # the checkpoint's env step, where training continues
    wall_offset: float = 0.0  # wall-clock seconds the run had trained (its wall_time_s)
    finished: bool = False  # the run had finished, at or past train.total_env_steps
    wandb_run_id: str | None = None  # the W&B run id to continue; None: none was stored


class Checkpointer:
    """``run_dir/checkpoints`` and ``run_dir/metrics.jsonl`` of the run ``cfg``."""

    def __init__(self, run_dir: Path, cfg: Config):
        self.cfg = cfg
        self.ckpt_dir = run_dir / "checkpoints"
        self.metrics_path = run_dir / "metrics.jsonl"
        self.run_dir = run_dir
        self.guard: Callable[[], None] = lambda: None  # as Logger.guard: before each save

    def refuse_overwrite(self) -> None:
        """ConfigError unless ``resume=true`` or the directory holds no run yet."""
        if not self.cfg.resume and (latest_checkpoint(self.ckpt_dir)
                                    or self.metrics_path.exists()):
            raise ConfigError(
                f"run directory {self.run_dir} already holds a run: pass resume=true to "
                "continue it, or choose another hydra.run.dir")

    def latest(self) -> Path | None:
        return latest_checkpoint(self.ckpt_dir)

    def save(self, env_steps: int, state: dict[str, Any]) -> Path:
        self.guard()
        return save_checkpoint(self.ckpt_dir, env_steps, state, self.cfg.checkpoint.keep)

    def restore(self, learner: Any, runner: Any, schedule: Any, rng: Any) -> Restored:
        """Load the newest intact checkpoint into the learner, the runner, the schedule
        and the evaluation rng, cut metrics.jsonl after it; a fresh start when there is
        none (and say so)."""
        provenance.check_run_format(self.run_dir)
        skipped: list[Path] = []
        found = load_newest(self.ckpt_dir, strict=self.cfg.checkpoint.strict, skipped=skipped,
                            allow_unverified=self.cfg.checkpoint.allow_unverified)
        if found is None:
            print(f"resume=true: no checkpoint in {self.ckpt_dir}, starting from scratch",
                  file=sys.stderr)
            cut_jsonl(self.metrics_path, 0)
            return Restored()
        path, state = found
        resume.check_same_experiment(self.cfg, state.get("config", {}), str(path))
        set_aside(skipped)
        env_steps = int(state["env_steps"])
        try:
            learner.load_state_dict_full(state["learner"])
            exact = runner.set_state(state["runner"], fresh_seed=self.cfg.seed + 17 + env_steps)
        except (KeyError, RuntimeError, ValueError) as e:
            raise CheckpointError(f"checkpoint {path} does not fit this run: {e}") from e
        self.check_rows(path, state, env_steps)
        # a finished run asked to go longer keeps going
        finished = bool(state["finished"]) and env_steps >= self.cfg.train.total_env_steps
        if finished:
            check_summary(self.run_dir)
        resume.set_rng_state(state["rng"], rng)
        schedule.load(state["counters"], env_steps)
        cut_jsonl(self.metrics_path, env_steps)
        print(f"resumed from {path} at env_steps={env_steps}"
              f"{'' if exact else ' (fresh episodes: env state not restorable)'}",
              file=sys.stderr)
        return Restored(env_steps, float(state["wall_time_s"]), finished,
                        state.get("wandb_run_id"))

    def check_rows(self, path: Path, state: dict[str, Any], env_steps: int) -> None:
        """Refuse a resume whose metrics.jsonl lost rows the checkpoint says were written
        (it records their count): the run's curves and summary would be half a run's."""
        written = int(state.get("metrics_rows", 0))
        rows = read_jsonl(self.metrics_path) if self.metrics_path.is_file() else []
        for i in range(1, len(rows)):  # two writers (a deleted .lock) leave this
            if rows[i]["env_steps"] <= rows[i - 1]["env_steps"]:
                what = "repeats" if rows[i] == rows[i - 1] or any(
                    rows[i] == r for r in rows[:i]) else "goes back to"
                raise CheckpointError(
                    f"{self.metrics_path}: row {i + 1} {what} env_steps={rows[i]['env_steps']} "
                    f"after {rows[i - 1]['env_steps']} (rows from two writers?); remove the "
                    "duplicated rows, or start the run afresh in a new directory")
        kept = sum(r["env_steps"] <= env_steps for r in rows)
        if kept < written:
            raise CheckpointError(
                f"{self.metrics_path} has {kept} rows up to env_steps={env_steps}, but "
                f"{path.name} was written after {written}: rows were lost; put the file "
                "back, or start the run afresh in a new directory")

    def init_from(self, learner: Any) -> None:
        """The networks of another run (``init_from``: its newest checkpoint, or a
        checkpoint file)."""
        src = Path(self.cfg.init_from).expanduser()
        allow_unverified = self.cfg.checkpoint.allow_unverified
        found = (load_newest(src / "checkpoints", allow_unverified=allow_unverified)
                 if src.is_dir() else (src, load_checkpoint(src, allow_unverified)))
        if found is None:
            raise CheckpointError(f"init_from = {str(src)!r}: no checkpoint in {src}")
        path, state = found
        try:
            learner.load_networks(state["learner"])
        except (KeyError, ValueError) as e:
            raise CheckpointError(f"init_from = {str(src)!r} does not fit this run: {e}") from e
        print(f"networks initialised from {path}", file=sys.stderr)
