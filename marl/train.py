"""Training entry point: ``python -m marl.train +experiment=coma_boxpush [key=value ...]``.

Wires config -> envs -> runner -> learner -> loggers -> checkpoints; no maths. The run
directory is Hydra's output directory (the last line printed names it). Before Hydra
starts, :func:`marl.cli.prepare` checks the command line and takes the run directory
(lock, new or resume): a refused run writes nothing; ``.hydra/`` is written once it starts.
"""

from __future__ import annotations

import json
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from marl.build import CONF_DIR, build, build_env, metrics_fn, register_configs
from marl.cli import fail as _fail
from marl.cli import prepare, save_hydra_files
from marl.config import Config, ConfigError, to_config
from marl.core.runner import evaluate, record_episode
from marl.io import provenance, resume
from marl.io.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    load_newest,
    save_checkpoint,
    set_aside,
)
from marl.io.errors import DiskFullError, NonFiniteError, TrainingInterrupted
from marl.io.files import cut_jsonl, remove_temporaries, write_gif
from marl.io.logging import Logger, Progress, WandbSink
from marl.io.metrics import summarise_episodes
from marl.io.outputs import recreate_outputs, write_outputs
from marl.io.rundir import RunDir, RunDirError
from marl.io.schedule import Schedule

__all__ = ["CONF_DIR", "Trainer", "main"]


# Signals that make a run finish its update, write a checkpoint and stop. PREEMPT_SIGNAL is
# the one the SLURM launcher asks for ahead of the time limit (submitit's requeue signal:
# conf/hydra/launcher/submitit_slurm_cpu.yaml, README "Sweeps on a cluster");
# tests/test_clusters.py fails if the three ever differ.
PREEMPT_SIGNAL = signal.SIGUSR2
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, PREEMPT_SIGNAL)


def pass_signal_on(handler: Any, stopped: TrainingInterrupted) -> None:
    """After the checkpoint, hand a stop signal to the handler that was installed before
    marl's: in a submitit job that is submitit's, which requeues the job and exits without
    a result, so the sweep waits for the requeued job (it resumes with resume=true).
    Default, ignore and Ctrl-C handlers are not called."""
    if callable(handler) and handler is not signal.default_int_handler:
        print(f"{stopped}; passing {signal.Signals(stopped.signum).name} on", file=sys.stderr)
        handler(stopped.signum, None)


class Trainer:
    """Owns one run: envs, runner, learner, loggers, counters, checkpoints.

    ``run()`` trains to ``train.total_env_steps``; with ``resume=true`` it first restores
    the newest intact checkpoint (a broken newer one is named and set aside as
    ``.corrupt``; ``checkpoint.strict=true`` refuses instead) and continues exactly (same
    metrics rows as an uninterrupted run, minus wall-clock fields) if the env can save its
    state. The STOP_SIGNALS (SIGTERM, SIGINT, SIGUSR1, SIGUSR2) finish
    the current update, write a checkpoint, close the loggers, pass the signal on to a
    handler that was there before marl's (:func:`pass_signal_on`: submitit requeues) and
    raise :class:`TrainingInterrupted`.
    """

    def __init__(self, cfg: Config, run_dir: Path, resolved: dict[str, Any]):
        self.cfg, self.run_dir = cfg, run_dir
        tc = cfg.train
        self.ckpt_dir = run_dir / "checkpoints"
        self.metrics_path = run_dir / "metrics.jsonl"
        if not cfg.resume and (latest_checkpoint(self.ckpt_dir) or self.metrics_path.exists()):
            raise ConfigError(
                f"run directory {run_dir} already holds a run: pass resume=true to continue "
                "it, or choose another hydra.run.dir")
        torch.set_num_threads(tc.torch_threads)
        resume.seed_everything(cfg.seed)
        self.env, self.learner, self.runner = build(cfg, tc.num_envs)
        self.update_metrics = metrics_fn(cfg)
        self.eval_env = build_env(cfg, tc.eval_episodes, seed=cfg.seed + 1_000_003)
        self.spec = self.env.spec
        self.eval_rng = np.random.default_rng(cfg.seed + 7)
        self.video_env = self._video_env() if tc.eval_video else None
        self.env_steps, self.wall_offset, self.finished = 0, 0.0, False
        self.schedule = Schedule(tc.log_every_env_steps, tc.eval_every_env_steps,
                                 cfg.checkpoint.every_env_steps)
        self._signal: int | None = None
        if cfg.init_from:
            self._init_from(Path(cfg.init_from).expanduser())
        run_id = self._resume() if cfg.resume else None
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_temporaries(run_dir, self.ckpt_dir)
        self.wandb = WandbSink(
            cfg.logger.wandb, run_dir, name=f"{cfg.algo.name}_{getattr(cfg.env, 'name', 'env')}"
            f"_s{cfg.seed}", group=cfg.name, job_type=cfg.algo.name,
            config={**resolved, "provenance": provenance.provenance()}, run_id=run_id)
        self.logger = Logger(run_dir, self.wandb,
                             Progress(tc.total_env_steps, self.env_steps, cfg.logger.progress,
                                      desc=cfg.name))

    def _video_env(self) -> Any:
        env = build_env(self.cfg, 1, seed=self.cfg.seed + 2_000_003)
        if hasattr(env, "render_rgb"):
            return env
        warnings.warn(f"env {getattr(self.cfg.env, 'name', '?')} cannot render frames: "
                      "train.eval_video is ignored", stacklevel=3)
        return None

    def state(self, wall: float) -> dict[str, Any]:
        """Everything a resumed run needs to continue exactly."""
        return {
            "env_steps": self.env_steps, "wall_time_s": wall, "finished": self.finished,
            "config": resume.config_dict(self.cfg),
            "counters": self.schedule.state(),
            "learner": self.learner.state_dict_full(),
            "runner": self.runner.get_state(),
            "wandb_run_id": self.wandb.run_id,
            "run_format": provenance.RUN_FORMAT,
            "rng": resume.rng_state(self.eval_rng),
        }

    def _resume(self) -> str | None:
        """Restore the newest intact checkpoint; returns the W&B run id to continue."""
        provenance.check_run_format(self.run_dir)
        skipped: list[Path] = []
        found = load_newest(self.ckpt_dir, strict=self.cfg.checkpoint.strict, skipped=skipped)
        if found is None:
            print(f"resume=true: no checkpoint in {self.ckpt_dir}, starting from scratch",
                  file=sys.stderr)
            cut_jsonl(self.metrics_path, 0)
            return None
        path, state = found
        resume.check_same_experiment(self.cfg, state.get("config", {}), str(path))
        set_aside(skipped)
        try:
            self.learner.load_state_dict_full(state["learner"])
            exact = self.runner.set_state(state["runner"], fresh_seed=self.cfg.seed + 17
                                          + int(state["env_steps"]))
        except (KeyError, RuntimeError, ValueError) as e:
            raise CheckpointError(f"checkpoint {path} does not fit this run: {e}") from e
        resume.set_rng_state(state["rng"], self.eval_rng)
        self.env_steps = int(state["env_steps"])
        self.wall_offset = float(state["wall_time_s"])
        self.schedule.load(state["counters"], self.env_steps)
        # a finished run asked to go longer keeps going
        self.finished = bool(state["finished"]) and \
            self.env_steps >= self.cfg.train.total_env_steps
        cut_jsonl(self.metrics_path, self.env_steps)
        print(f"resumed from {path} at env_steps={self.env_steps}"
              f"{'' if exact else ' (fresh episodes: env state not restorable)'}",
              file=sys.stderr)
        return state.get("wandb_run_id")

    def _init_from(self, src: Path) -> None:
        found = load_newest(src / "checkpoints") if src.is_dir() else (src, load_checkpoint(src))
        if found is None:
            raise CheckpointError(f"init_from = {str(src)!r}: no checkpoint in {src}")
        path, state = found
        try:
            self.learner.load_networks(state["learner"])
        except (KeyError, ValueError) as e:
            raise CheckpointError(f"init_from = {str(src)!r} does not fit this run: {e}") from e
        print(f"networks initialised from {path}", file=sys.stderr)

    def save(self, wall: float) -> Path:
        self.learner.check_finite()
        return save_checkpoint(self.ckpt_dir, self.env_steps, self.state(wall),
                               self.cfg.checkpoint.keep)

    # ------------------------------------------------------------- evaluation
    def evaluate(self) -> dict[str, float]:
        stats = evaluate(self.eval_env, self.learner.policy, self.learner.policy.hidden_dim,
                         seed=int(self.eval_rng.integers(2**31)))
        if self.video_env is not None:
            self.record_video()
        return summarise_episodes("eval", stats, self.spec)

    def record_video(self) -> Path:
        """One greedy episode as ``videos/eval_<env_steps>.gif``, also logged to W&B."""
        frames = record_episode(self.video_env, self.learner.policy,
                                self.learner.policy.hidden_dim,
                                self.cfg.train.video_max_frames,
                                seed=int(self.eval_rng.integers(2**31)))
        out = write_gif(self.run_dir / "videos" / f"eval_{self.env_steps:012d}.gif", frames,
                        self.cfg.train.video_fps)
        self.wandb.log_video("eval/video", out, self.env_steps)
        return out

    # ------------------------------------------------------------- training
    def run(self) -> dict[str, Any]:
        """Train to the end (or to a stop signal); returns the summary."""
        if self.finished:
            print(f"run already finished at env_steps={self.env_steps}", file=sys.stderr)
            try:
                return recreate_outputs(self.run_dir, self.cfg, self.wandb, self.env_steps,
                                        self.wall_offset)
            finally:
                self.logger.close()
        def on_signal(signum: int, _frame: Any) -> None:
            self._signal = signum

        previous = {s: signal.signal(s, on_signal) for s in STOP_SIGNALS}
        exit_code = 1
        stopped: TrainingInterrupted | None = None
        try:
            summary = self._loop()
            exit_code = 0
            return summary
        except TrainingInterrupted as e:
            stopped = e
            raise
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
            self.logger.close(exit_code)
            if stopped is not None:
                pass_signal_on(previous[stopped.signum], stopped)

    def _loop(self) -> dict[str, Any]:
        tc = self.cfg.train
        start = time.perf_counter() - self.wall_offset
        self._window = (time.perf_counter(), self.env_steps, 0.0, 0.0)
        train_metrics: dict[str, float] = {}
        row: dict[str, float] = {}
        while self.env_steps < tc.total_env_steps:
            train_metrics = self._step()
            done = self.env_steps >= tc.total_env_steps
            row = self._log_row(done, train_metrics, start)
            if self._signal is not None and not done:
                path = self.save(time.perf_counter() - start)
                raise TrainingInterrupted(self._signal, self.env_steps, str(path))
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
        return write_outputs(self.run_dir, self.cfg, self.wandb, self.env_steps, wall,
                             {**row, **train_metrics})

    def _step(self) -> dict[str, float]:
        """Collect one fragment and update; the update's metrics."""
        t0 = time.perf_counter()
        self.learner.policy.anneal(self.env_steps)
        ro = self.runner.collect(self.learner.policy)  # ro.eps: the epsilon that acted
        self.env_steps = self.runner.env_steps
        t1 = time.perf_counter()
        try:
            metrics = self.update_metrics(self.learner.update(ro), self.spec)
        except NonFiniteError as e:
            raise NonFiniteError(
                f"{e} at env_steps={self.env_steps}: training stopped, the update was not "
                f"applied; last good checkpoint: {latest_checkpoint(self.ckpt_dir) or 'none'}"
            ) from e
        w_t, w_steps, t_collect, t_update = self._window
        self._window = (w_t, w_steps, t_collect + t1 - t0, t_update + time.perf_counter() - t1)
        return metrics

    def _log_row(self, done: bool, train_metrics: dict[str, float],
                 start: float) -> dict[str, float]:
        """Evaluate and log when due (always at the end); the row logged, or {}."""
        row: dict[str, float] = {}
        if done or self.schedule.due("eval", self.env_steps):
            row.update(self.evaluate())
            self.schedule.advance("eval", self.env_steps)
        if not (done or row or self.schedule.due("log", self.env_steps)):
            return row
        now = time.perf_counter()
        row.update(train_metrics)
        row.update(summarise_episodes("train", self.runner.episodes.pop(), self.spec))
        if "train/success_rate" in row:
            row["train/success"] = row["train/success_rate"]
        if "train/return_mean" in row:
            row["train/return"] = row["train/return_mean"]
        w_t, w_steps, t_collect, t_update = self._window
        row["perf/steps_per_s"] = (self.env_steps - w_steps) / max(now - w_t, 1e-9)
        row["perf/collect_frac"] = t_collect / max(t_collect + t_update, 1e-9)
        row["perf/wall_time_s"] = now - start
        self._window = (now, self.env_steps, 0.0, 0.0)
        self.logger.log(self.env_steps, row)
        self.schedule.advance("log", self.env_steps)
        return row


register_configs()
_HELD: RunDir | None = None  # the run directory this process holds (marl.cli.prepare's)


def _start(dcfg: DictConfig, run_dir: Path, multirun: bool) -> Trainer | float:
    """The Trainer, or the failure's return value (refused: nothing of the run touched)."""
    global _HELD
    mine = _HELD is not None and _HELD.created
    try:
        if multirun:  # each job takes its own directory (Hydra made it for the job)
            _HELD = RunDir(run_dir, [])
            _HELD.lock(announce=False)
        cfg = to_config(dcfg)
        resolved = OmegaConf.to_container(dcfg, resolve=True)
        trainer = Trainer(cfg, run_dir, resolved)  # type: ignore[arg-type]
    except (ConfigError, CheckpointError, RunDirError, ValueError, ImportError) as e:
        if mine and not multirun:
            _HELD.discard()  # type: ignore[union-attr]
        return _fail(run_dir, str(e).splitlines()[0], 2, multirun, record=multirun)
    if _HELD is not None:
        _HELD.announce()
    if not multirun:
        save_hydra_files(run_dir, dcfg)
    provenance.record(run_dir)
    (run_dir / "failed.json").unlink(missing_ok=True)  # an earlier attempt's, now stale
    return trainer


@hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
def _task(dcfg: DictConfig) -> float:
    """Hydra task: one run (a job of a multirun); see :func:`main` for exit codes."""
    hc = HydraConfig.get()
    multirun, run_dir = hc.mode == RunMode.MULTIRUN, Path(hc.runtime.output_dir)
    try:
        return _run(dcfg, run_dir, multirun)
    except (NonFiniteError, DiskFullError) as e:  # a full disk: also at .hydra/, summary
        return _fail(run_dir, str(e), 1, multirun)
    finally:
        if multirun and _HELD is not None:  # the job's directory, taken in _start
            _HELD.release()


def _run(dcfg: DictConfig, run_dir: Path, multirun: bool) -> float:
    trainer = _start(dcfg, run_dir, multirun)
    if not isinstance(trainer, Trainer):
        return trainer
    try:
        summary = trainer.run()
    except TrainingInterrupted as e:
        print(str(e), file=sys.stderr)
        print(f"run directory: {run_dir}")
        if multirun:
            return float("nan")
        sys.exit(128 + e.signum)
    except (NonFiniteError, DiskFullError):
        raise
    except Exception as e:
        if not multirun:
            _fail(run_dir, f"{type(e).__name__}: {e}", 1, multirun=True)  # record, go on
            raise
        return _fail(run_dir, f"{type(e).__name__}: {e}", 1, multirun)
    print(json.dumps({k: summary[k] for k in ("env_steps", "wall_time_s", "steps_per_s",
                      "eval/return_mean", "eval/success_rate") if k in summary}))
    print(f"run directory: {run_dir}")
    return float(summary.get("eval/return_mean", float("nan")))


def main() -> float | None:
    """``python -m marl.train [overrides]``: returns the final greedy evaluation return
    (the sweep objective).

    Exit codes: 0 done; 2 bad configuration or a refused run directory (in use by another
    process, or holding a run without resume=true: one line, nothing written); 1 the run
    failed (NaN/inf, a full disk, a crash; ``failed.json`` says why); 128 + signal number
    when one of STOP_SIGNALS stopped it after a checkpoint. In a multirun a failed job
    returns NaN instead, so the other jobs run; the sweep summary reports it.
    """
    global _HELD
    try:
        argv, _HELD = prepare(sys.argv[1:])
    except (ConfigError, RunDirError, ImportError) as e:  # ImportError: a plugin, an extra
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    saved = sys.argv
    sys.argv = [saved[0], *argv, *(["hydra.output_subdir=null"] if _HELD else [])]
    try:
        return _task()
    finally:
        sys.argv = saved
        if _HELD is not None:
            _HELD.release()
            _HELD = None


if __name__ == "__main__":
    main()
