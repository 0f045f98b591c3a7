"""Training entry point: ``python -m marl.train +experiment=coma_boxpush [key=value ...]``.

This file wires the pieces (config -> envs -> runner -> learner -> loggers ->
checkpoints) and holds no maths. The run directory is Hydra's output directory; the
last line printed names it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
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
from marl.config import Config, ConfigError, to_config
from marl.core.runner import evaluate, record_episode
from marl.io.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from marl.io.errors import NonFiniteError, TrainingInterrupted
from marl.io.files import write_gif, write_json_atomic
from marl.io.logging import Logger, Progress, WandbSink
from marl.io.metrics import peak_rss_mib, summarise_episodes
from marl.io.plots import make_plots

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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# Config keys a resumed run may change; any other difference means another experiment.
RESUME_MAY_CHANGE = ("train.total_env_steps", "train.eval_video", "train.video_max_frames",
                     "train.video_fps", "train.log_every_env_steps", "logger.", "checkpoint.",
                     "resume")


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _config_dict(cfg: Config) -> dict[str, Any]:
    return _flatten(dataclasses.asdict(cfg))


def _schema_defaults(cls: type = Config, prefix: str = "") -> dict[str, Any]:
    """Flattened defaults of the config schema: a key a checkpoint predates (a field added
    since) may resume when this run leaves it at its default, which keeps the old
    behaviour."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f"{prefix}{f.name}"] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
            if dataclasses.is_dataclass(value):
                out.update(_schema_defaults(type(value), f"{prefix}{f.name}."))
            else:
                out[f"{prefix}{f.name}"] = value
    return out


def config_diff(mine: dict[str, Any], theirs: dict[str, Any],
                env_schema: type | None = None) -> list[str]:
    """Keys whose values differ between this run's config and a checkpoint's, leaving out
    those a resume may change and those the checkpoint predates at their default
    (``env.*`` ones too when ``env_schema``, the env's config dataclass, is given)."""
    defaults = _schema_defaults()
    if dataclasses.is_dataclass(env_schema):  # False for None
        defaults.update(_schema_defaults(env_schema, "env."))
    return sorted(k for k in set(mine) | set(theirs)
                  if mine.get(k) != theirs.get(k)
                  and not any(k == p or k.startswith(p) for p in RESUME_MAY_CHANGE)
                  and not (k not in theirs and k in defaults and mine[k] == defaults[k]))


class Trainer:
    """Owns one run: envs, runner, learner, loggers, counters, checkpoints.

    ``run()`` trains to ``train.total_env_steps``; with ``resume=true`` it first restores
    the newest checkpoint of the run directory and continues exactly where it stopped
    (same metrics rows as an uninterrupted run, minus wall-clock fields) when the env can
    save its state. The STOP_SIGNALS (SIGTERM, SIGINT, SIGUSR1, SIGUSR2) finish the current
    update, write a checkpoint, close the loggers, pass the signal on to a handler that was
    there before marl's (:func:`pass_signal_on`: submitit requeues) and raise
    :class:`TrainingInterrupted`.
    """

    def __init__(self, cfg: Config, run_dir: Path, resolved: dict[str, Any]):
        self.cfg, self.run_dir = cfg, run_dir
        tc = cfg.train
        self.ckpt_dir = run_dir / "checkpoints"
        self.metrics_path = run_dir / "metrics.jsonl"
        if not cfg.resume and (list_checkpoints(self.ckpt_dir) or self.metrics_path.exists()):
            raise ConfigError(
                f"run directory {run_dir} already holds a run: pass resume=true to continue "
                "it, or choose another hydra.run.dir")
        torch.set_num_threads(tc.torch_threads)
        seed_everything(cfg.seed)
        self.env, self.learner, self.runner = build(cfg, tc.num_envs)
        self.update_metrics = metrics_fn(cfg)
        self.eval_env = build_env(cfg, tc.eval_episodes, seed=cfg.seed + 1_000_003)
        self.spec = self.env.spec
        self.eval_rng = np.random.default_rng(cfg.seed + 7)
        self.video_env = None
        if tc.eval_video:
            self.video_env = build_env(cfg, 1, seed=cfg.seed + 2_000_003)
            if not hasattr(self.video_env, "render_rgb"):
                warnings.warn(f"env {getattr(cfg.env, 'name', '?')} cannot render frames: "
                              "train.eval_video is ignored", stacklevel=2)
                self.video_env = None
        self.env_steps = 0
        self.wall_offset = 0.0
        self.next_log = tc.log_every_env_steps
        self.next_eval = tc.eval_every_env_steps or None
        self.next_ckpt = cfg.checkpoint.every_env_steps or None
        self.finished = False
        self._signal: int | None = None
        if cfg.init_from:
            self._init_from(Path(cfg.init_from).expanduser())
        run_id = self._resume() if cfg.resume else None
        env_name = getattr(cfg.env, "name", "env")
        run_dir.mkdir(parents=True, exist_ok=True)
        self.wandb = WandbSink(
            cfg.logger.wandb, run_dir, name=f"{cfg.algo.name}_{env_name}_s{cfg.seed}",
            group=cfg.name, job_type=cfg.algo.name, config=resolved, run_id=run_id)
        self.logger = Logger(run_dir, self.wandb,
                             Progress(tc.total_env_steps, self.env_steps, cfg.logger.progress,
                                      desc=cfg.name))

    # ------------------------------------------------------------- state
    def state(self, wall: float) -> dict[str, Any]:
        """Everything a resumed run needs to continue exactly."""
        return {
            "env_steps": self.env_steps,
            "wall_time_s": wall,
            "finished": self.finished,
            "config": _config_dict(self.cfg),
            "counters": {"next_log": self.next_log, "next_eval": self.next_eval,
                         "next_ckpt": self.next_ckpt},
            "learner": self.learner.state_dict_full(),
            "runner": self.runner.get_state(),
            "wandb_run_id": self.wandb.run_id,
            "rng": {"python": random.getstate(), "numpy": np.random.get_state(),
                    "torch": torch.get_rng_state(),
                    "eval": self.eval_rng.bit_generator.state},
        }

    def _resume(self) -> str | None:
        """Restore the newest checkpoint; returns the W&B run id to continue."""
        path = latest_checkpoint(self.ckpt_dir)
        if path is None:
            print(f"resume=true: no checkpoint in {self.ckpt_dir}, starting from scratch",
                  file=sys.stderr)
            self._truncate_metrics(0)
            return None
        state = load_checkpoint(path)
        mine, theirs = _config_dict(self.cfg), state.get("config", {})
        diff = config_diff(mine, theirs, type(self.cfg.env))
        if diff:
            shown = ", ".join(f"{k}: {theirs.get(k)!r} -> {mine.get(k)!r}" for k in diff[:6])
            raise CheckpointError(
                f"checkpoint {path} is from a different configuration ({shown}); resume "
                f"only changes {', '.join(RESUME_MAY_CHANGE)}")
        try:
            self.learner.load_state_dict_full(state["learner"])
            exact = self.runner.set_state(state["runner"], fresh_seed=self.cfg.seed + 17
                                          + int(state["env_steps"]))
        except (KeyError, RuntimeError, ValueError) as e:
            raise CheckpointError(f"checkpoint {path} does not fit this run: {e}") from e
        rng = state["rng"]
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
        self.eval_rng.bit_generator.state = rng["eval"]
        self.env_steps = int(state["env_steps"])
        self.wall_offset = float(state["wall_time_s"])
        c = state["counters"]
        self.next_log, self.next_eval, self.next_ckpt = c["next_log"], c["next_eval"], \
            c["next_ckpt"]
        self.finished = bool(state["finished"])
        if self.finished and self.env_steps < self.cfg.train.total_env_steps:
            self.finished = False  # a longer run was asked for: keep going
        self._truncate_metrics(self.env_steps)
        print(f"resumed from {path} at env_steps={self.env_steps}"
              f"{'' if exact else ' (fresh episodes: env state not restorable)'}",
              file=sys.stderr)
        return state.get("wandb_run_id")

    def _init_from(self, src: Path) -> None:
        path = latest_checkpoint(src / "checkpoints") if src.is_dir() else src
        if path is None:
            raise CheckpointError(f"init_from = {str(src)!r}: no checkpoint in {src}")
        state = load_checkpoint(path)
        try:
            self.learner.load_networks(state["learner"])
        except (KeyError, ValueError) as e:
            raise CheckpointError(f"init_from = {str(src)!r} does not fit this run: {e}") from e
        print(f"networks initialised from {path}", file=sys.stderr)

    def _truncate_metrics(self, env_steps: int) -> None:
        """Drop rows logged after the checkpoint we resume from (they will be redone)."""
        if not self.metrics_path.exists():
            return
        lines = self.metrics_path.read_text(encoding="utf-8").splitlines()
        keep = [ln for ln in lines if ln.strip() and json.loads(ln)["env_steps"] <= env_steps]
        tmp = self.metrics_path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(ln + "\n" for ln in keep), encoding="utf-8")
        os.replace(tmp, self.metrics_path)

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
    def _on_signal(self, signum: int, frame: Any) -> None:
        del frame
        self._signal = signum

    def run(self) -> dict[str, Any]:
        """Train to the end (or to a stop signal); returns the summary."""
        if self.finished:
            summary_path = self.run_dir / "summary.json"
            print(f"run already finished at env_steps={self.env_steps}", file=sys.stderr)
            self.logger.close()
            return json.loads(summary_path.read_text()) if summary_path.exists() else {}
        previous = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS}
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
        tc, ck = self.cfg.train, self.cfg.checkpoint
        start = time.perf_counter() - self.wall_offset
        window_t, window_steps = time.perf_counter(), self.env_steps
        t_collect = t_update = 0.0
        train_metrics: dict[str, float] = {}
        row: dict[str, float] = {}
        while self.env_steps < tc.total_env_steps:
            t0 = time.perf_counter()
            self.learner.policy.anneal(self.env_steps)
            ro = self.runner.collect(self.learner.policy)  # ro.eps: the epsilon that acted
            self.env_steps = self.runner.env_steps
            t1 = time.perf_counter()
            try:
                train_metrics = self.update_metrics(self.learner.update(ro), self.spec)
            except NonFiniteError as e:
                last = latest_checkpoint(self.ckpt_dir)
                raise NonFiniteError(
                    f"{e} at env_steps={self.env_steps}: training stopped, the update was not "
                    f"applied; last good checkpoint: {last or 'none'}") from e
            t2 = time.perf_counter()
            t_collect += t1 - t0
            t_update += t2 - t1
            done = self.env_steps >= tc.total_env_steps
            row: dict[str, float] = {}
            if done or (self.next_eval is not None and self.env_steps >= self.next_eval):
                row.update(self.evaluate())
                while self.next_eval is not None and self.next_eval <= self.env_steps:
                    self.next_eval += tc.eval_every_env_steps
            if done or row or self.env_steps >= self.next_log:
                now = time.perf_counter()
                row.update(train_metrics)
                row.update(summarise_episodes("train", self.runner.episodes.pop(), self.spec))
                if "train/success_rate" in row:
                    row["train/success"] = row["train/success_rate"]
                if "train/return_mean" in row:
                    row["train/return"] = row["train/return_mean"]
                row["perf/steps_per_s"] = (self.env_steps - window_steps) / max(
                    now - window_t, 1e-9)
                row["perf/collect_frac"] = t_collect / max(t_collect + t_update, 1e-9)
                row["perf/wall_time_s"] = now - start
                window_t, window_steps, t_collect, t_update = now, self.env_steps, 0.0, 0.0
                self.logger.log(self.env_steps, row)
                while self.next_log <= self.env_steps:
                    self.next_log += tc.log_every_env_steps
            if self._signal is not None and not done:
                path = self.save(time.perf_counter() - start)
                raise TrainingInterrupted(self._signal, self.env_steps, str(path))
            if self.next_ckpt is not None and self.env_steps >= self.next_ckpt and not done:
                self.save(time.perf_counter() - start)
                while self.next_ckpt <= self.env_steps:
                    self.next_ckpt += ck.every_env_steps
        if not any(k.startswith("eval/") for k in row):
            # resumed with total_env_steps at or below the steps already done: the loop
            # did not run, so evaluate the networks as they are
            row = self.evaluate()
            self.logger.log(self.env_steps, row)
        self.finished = True
        wall = time.perf_counter() - start
        self.save(wall)
        final = {k: v for k, v in row.items() if k.startswith("eval/")}
        summary = {
            "env_steps": self.env_steps,
            "wall_time_s": wall,
            "steps_per_s": self.env_steps / max(wall, 1e-9),
            "peak_rss_mib": peak_rss_mib(),
            **final,
            **{k: v for k, v in train_metrics.items() if k.startswith("loss/")},
            "name": self.cfg.name,
            "algo": self.cfg.algo.name,
            "seed": self.cfg.seed,
        }
        write_json_atomic(self.run_dir / "summary.json", summary)
        self.wandb.summary(summary)
        if self.cfg.logger.plots:
            self.logger.jsonl.f.flush()
            for name, path in make_plots(self.run_dir, list(self.cfg.logger.plots)).items():
                self.wandb.log_image(f"plots/{name}", path, self.env_steps)
        return summary


def _only_hydra_files(run_dir: Path) -> bool:
    return all(p.name in (".hydra", "train.log") for p in run_dir.iterdir())


register_configs()


def _fail(run_dir: Path, message: str, code: int, multirun: bool) -> float:
    """Report a failed run: ``failed.json`` in its directory, one line on stderr; in a
    multirun return NaN so the other jobs go on (the sweep summary lists the failure)."""
    print(f"error: {message}", file=sys.stderr)
    if run_dir.is_dir():
        write_json_atomic(run_dir / "failed.json", {"error": message, "exit_code": code})
    if multirun:
        return float("nan")
    sys.exit(code)


@hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
def main(dcfg: DictConfig) -> float:
    """Hydra task: returns the final greedy evaluation return (the sweep objective).

    Exit codes: 0 done; 2 bad configuration (nothing left behind in a new run directory);
    1 the run failed (NaN/inf, a crash; ``failed.json`` says why); 128 + signal number
    when one of STOP_SIGNALS stopped it after a checkpoint. In a multirun a failed job
    returns NaN instead, so the other jobs run; the sweep summary reports it.
    """
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    fresh_dir = run_dir.is_dir() and _only_hydra_files(run_dir)
    try:
        cfg = to_config(dcfg)
        resolved = OmegaConf.to_container(dcfg, resolve=True)
        trainer = Trainer(cfg, run_dir, resolved)  # type: ignore[arg-type]
    except (ConfigError, CheckpointError, ValueError, ImportError) as e:  # ImportError: an extra
        if fresh_dir and not multirun:  # a sweep keeps the job's failed.json for its summary
            shutil.rmtree(run_dir, ignore_errors=True)
        return _fail(run_dir, str(e), 2, multirun)
    (run_dir / "failed.json").unlink(missing_ok=True)  # an earlier attempt's, now stale
    try:
        summary = trainer.run()
    except TrainingInterrupted as e:
        print(str(e), file=sys.stderr)
        print(f"run directory: {run_dir}")
        if multirun:
            return float("nan")
        sys.exit(128 + e.signum)
    except NonFiniteError as e:
        return _fail(run_dir, str(e), 1, multirun)
    except Exception as e:
        if not multirun:
            write_json_atomic(run_dir / "failed.json",
                               {"error": f"{type(e).__name__}: {e}", "exit_code": 1})
            raise
        return _fail(run_dir, f"{type(e).__name__}: {e}", 1, multirun)
    shown = {k: summary[k] for k in ("env_steps", "wall_time_s", "steps_per_s",
                                     "eval/return_mean", "eval/success_rate") if k in summary}
    print(json.dumps(shown))
    print(f"run directory: {run_dir}")
    return float(summary.get("eval/return_mean", float("nan")))


if __name__ == "__main__":
    main()
