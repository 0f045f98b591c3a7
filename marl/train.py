"""Training entry point: ``python -m marl.train +experiment=coma_boxpush [key=value ...]``.

The training loop: config -> envs -> runner -> learner, one update per fragment, rows,
evaluations and checkpoints on their schedule; no maths. Around it, each in its module:
the checkpointer (:mod:`marl.io.checkpointer`), the rows and metric hooks
(:mod:`marl.io.rows`), the loggers (:mod:`marl.io.logging`), stop signals
(:mod:`marl.io.signals`) and the process's life (:mod:`marl.lifecycle`: the run
directory it holds, taken before anything is written, and the exit codes).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from marl.build import CONF_DIR, build, build_env, metrics_fn, register_configs
from marl.config import Config
from marl.core.runner import evaluate
from marl.io import provenance, resume
from marl.io.checkpointer import Checkpointer, Restored
from marl.io.errors import NonFiniteError, TrainingInterrupted
from marl.io.files import remove_temporaries
from marl.io.logging import Logger, Progress
from marl.io.outputs import recreate_outputs, write_outputs
from marl.io.rows import RowAssembler, load_hooks
from marl.io.schedule import Schedule
from marl.io.signals import StopSignals
from marl.io.sinks import SinkOpen, open_sinks
from marl.io.video import record_gif, video_env
from marl.lifecycle import Job

__all__ = ["CONF_DIR", "Trainer", "main"]


class Trainer:
    """Owns one run: envs, runner, learner, loggers, counters, checkpoints.

    ``run()`` trains to ``train.total_env_steps``; with ``resume=true`` it first restores
    the newest intact checkpoint (:class:`marl.io.checkpointer.Checkpointer`) and
    continues exactly (same metrics rows as an uninterrupted run, minus wall-clock
    fields) if the env can save its state. A stop signal
    (:data:`marl.io.signals.STOP_SIGNALS`) finishes the current update, writes a
    checkpoint, closes the loggers and raises :class:`TrainingInterrupted` (after
    passing the signal on: submitit requeues).
    """

    def __init__(self, cfg: Config, run_dir: Path, resolved: dict[str, Any]):
        self.cfg, self.run_dir = cfg, run_dir
        tc = cfg.train
        self.checkpointer = Checkpointer(run_dir, cfg)
        self.checkpointer.refuse_overwrite()
        hooks = load_hooks(cfg.logger.metrics)
        torch.set_num_threads(tc.torch_threads)
        resume.seed_everything(cfg.seed)
        self.env, self.learner, self.runner = build(cfg, tc.num_envs)
        self.update_metrics = metrics_fn(cfg)
        self.eval_env = build_env(cfg, tc.eval_episodes, seed=cfg.seed + 1_000_003)
        self.spec = self.env.spec
        self.rows = RowAssembler(self.spec, hooks)
        self.eval_rng = np.random.default_rng(cfg.seed + 7)
        self.video_env = video_env(cfg, cfg.seed + 2_000_003) if tc.eval_video else None
        self.schedule = Schedule(tc.log_every_env_steps, tc.eval_every_env_steps,
                                 cfg.checkpoint.every_env_steps)
        self.stop = StopSignals()
        if cfg.init_from:
            self.checkpointer.init_from(self.learner)
        got = (self.checkpointer.restore(self.learner, self.runner, self.schedule, self.eval_rng)
               if cfg.resume else Restored())  # a fresh run: the counters at 0
        self.env_steps, self.wall_offset, self.finished = (got.env_steps, got.wall_offset,
                                                           got.finished)
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_temporaries(run_dir, self.checkpointer.ckpt_dir)
        self.sinks = open_sinks(SinkOpen(
            cfg.logger, run_dir, name=f"{cfg.algo.name}_{getattr(cfg.env, 'name', 'env')}"
            f"_s{cfg.seed}", group=cfg.name, job_type=cfg.algo.name,
            config={**resolved, "provenance": provenance.provenance()},
            run_id=got.wandb_run_id, resumed_at=self.env_steps))
        self.logger = Logger(run_dir, self.sinks,
                             Progress(tc.total_env_steps, self.env_steps, cfg.logger.progress,
                                      desc=cfg.name))

    def state(self, wall: float) -> dict[str, Any]:
        """Everything a resumed run needs to continue exactly."""
        return {
            "env_steps": self.env_steps, "wall_time_s": wall, "finished": self.finished,
            "config": resume.config_dict(self.cfg),
            "counters": self.schedule.state(),
            "learner": self.learner.state_dict_full(),
            "runner": self.runner.get_state(),
            "wandb_run_id": self.sinks.run_id,
            "run_format": provenance.RUN_FORMAT,
            "rng": resume.rng_state(self.eval_rng),
            "metrics_rows": self.logger.jsonl.rows,
        }

    def save(self, wall: float) -> Path:
        self.learner.check_finite()
        return self.checkpointer.save(self.env_steps, self.state(wall))

    # ------------------------------------------------------------- evaluation
    def evaluate(self) -> dict[str, float]:
        stats = evaluate(self.eval_env, self.learner.policy, self.learner.policy.hidden_dim,
                         seed=int(self.eval_rng.integers(2**31)))
        if self.video_env is not None:
            self.record_video()
        return self.rows.evaluation(self.env_steps, stats)

    def record_video(self) -> Path:
        """One greedy episode as ``videos/eval_<env_steps>.gif``, also to the sinks."""
        tc = self.cfg.train
        out = record_gif(self.video_env, self.learner.policy, self.run_dir, "eval",
                         self.env_steps, tc.video_max_frames, tc.video_fps,
                         seed=int(self.eval_rng.integers(2**31)))
        self.sinks.log_video("eval/video", out, self.env_steps)
        return out

    # ------------------------------------------------------------- training
    def run(self) -> dict[str, Any]:
        """Train to the end (or to a stop signal); returns the summary."""
        if self.finished:
            print(f"run already finished at env_steps={self.env_steps}", file=sys.stderr)
            try:
                return recreate_outputs(self.run_dir, self.cfg, self.sinks, self.env_steps,
                                        self.wall_offset)
            finally:
                self.logger.close()
        exit_code = 1
        with self.stop:  # on the way out: the handlers back, a stop signal passed on
            try:
                summary = self._loop()
                exit_code = 0
                return summary
            finally:
                self.logger.close(exit_code)

    def _loop(self) -> dict[str, Any]:
        tc = self.cfg.train
        start = time.perf_counter() - self.wall_offset
        self.rows.restart(self.env_steps)
        train_metrics: dict[str, float] = {}
        row: dict[str, float] = {}
        while self.env_steps < tc.total_env_steps:
            train_metrics = self._step()
            done = self.env_steps >= tc.total_env_steps
            row = self._log_row(done, train_metrics, start)
            if self.stop.signum is not None and not done:
                path = self.save(time.perf_counter() - start)
                raise TrainingInterrupted(self.stop.signum, self.env_steps, str(path))
            if self.schedule.due("ckpt", self.env_steps) and not done:
                self.schedule.advance("ckpt", self.env_steps)  # before the save: see Schedule
                self.save(time.perf_counter() - start)
        if not any(k.startswith("eval/") for k in row):
            # resumed with total_env_steps at or below the steps already done: the loop
            # did not run, so evaluate the networks as they are
            row = self.evaluate()
            self.logger.log(self.env_steps, row)
        self.finished = True
        wall = time.perf_counter() - start
        self.save(wall)
        return write_outputs(self.run_dir, self.cfg, self.sinks, self.env_steps, wall,
                             {**row, **train_metrics})

    def _step(self) -> dict[str, float]:
        """Collect one fragment and update; the update's metrics (and the hooks')."""
        t0 = time.perf_counter()
        self.learner.policy.anneal(self.env_steps)
        ro = self.runner.collect(self.learner.policy)  # ro.eps: the epsilon that acted
        self.env_steps = self.runner.env_steps
        t1 = time.perf_counter()
        try:
            stats = self.learner.update(ro)
        except NonFiniteError as e:
            raise NonFiniteError(
                f"{e} at env_steps={self.env_steps}: training stopped, the update was not "
                f"applied; last good checkpoint: {self.checkpointer.latest() or 'none'}"
            ) from e
        metrics = self.update_metrics(stats, self.spec)
        self.rows.timed(t1 - t0, time.perf_counter() - t1)
        return self.rows.after_update(self.env_steps, ro, stats, metrics, ro.episodes)

    def _log_row(self, done: bool, train_metrics: dict[str, float],
                 start: float) -> dict[str, float]:
        """Evaluate and log when due (always at the end); the row logged, or {}."""
        row: dict[str, float] = {}
        if done or self.schedule.due("eval", self.env_steps):
            row.update(self.evaluate())
            self.schedule.advance("eval", self.env_steps)
        if not (done or row or self.schedule.due("log", self.env_steps)):
            return row
        row.update(self.rows.train_row(self.env_steps, train_metrics,
                                       self.runner.episodes.pop(),
                                       time.perf_counter() - start))
        self.logger.log(self.env_steps, row)
        self.schedule.advance("log", self.env_steps)
        return row

register_configs()
JOB = Job()
"""This process's run and the directory it holds (marl.cli.prepare's, or its job's)."""


def _train(dcfg: DictConfig, run_dir: Path, multirun: bool) -> float:
    trainer = JOB.start(dcfg, run_dir, multirun, lambda cfg: Trainer(
        cfg, run_dir, OmegaConf.to_container(dcfg, resolve=True)))
    if not isinstance(trainer, Trainer):
        return trainer
    summary = trainer.run()
    print(json.dumps({k: summary[k] for k in ("env_steps", "wall_time_s", "steps_per_s",
                      "eval/return_mean", "eval/success_rate") if k in summary}))
    print(f"run directory: {run_dir}")
    return float(summary.get("eval/return_mean", float("nan")))


@hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
def _task(dcfg: DictConfig) -> float:
    """Hydra task: one run (a job of a multirun); see :func:`main` for exit codes."""
    hc = HydraConfig.get()
    multirun, run_dir = hc.mode == RunMode.MULTIRUN, Path(hc.runtime.output_dir)
    try:
        return JOB.finish(lambda: _train(dcfg, run_dir, multirun), run_dir, multirun)
    finally:
        if multirun:  # the job's directory, taken in _start
            JOB.release()


def main() -> float | None:
    """``python -m marl.train [overrides]``: returns the final greedy evaluation return
    (the sweep objective).

    Exit codes: 0 done; 2 bad configuration or a refused run directory (in use by another
    process, or holding a run without resume=true: one line, nothing written); 1 the run
    failed (NaN/inf, a full disk, a crash; ``failed.json`` says why); 128 + signal number
    when one of marl.io.signals.STOP_SIGNALS stopped it after a checkpoint. In a multirun
    a failed job returns NaN instead, so the other jobs run; the sweep summary reports it.
    """
    return JOB.main(_task)


if __name__ == "__main__":
    main()
