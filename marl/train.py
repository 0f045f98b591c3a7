"""Training entry point: ``python -m marl.train +experiment=coma_boxpush [key=value ...]``.

This file wires the pieces (config -> envs -> runner -> learner -> loggers ->
checkpoints) and holds no maths. The run directory is Hydra's output directory; the
last line printed names it.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from marl.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from marl.config import Config, ConfigError, register_configs, to_config
from marl.envs import make_vec_env
from marl.learner import Learner
from marl.logging import Logger, Progress, WandbSink
from marl.metrics import summarise_episodes
from marl.plots import make_plots
from marl.runner import Runner, evaluate, record_episode

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
if not CONF_DIR.is_dir():  # installed as a wheel: conf/ ships inside the package
    CONF_DIR = Path(__file__).resolve().parent / "conf"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def peak_rss_mib() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Trainer:
    """Owns one run: envs, runner, learner, loggers, counters."""

    def __init__(self, cfg: Config, run_dir: Path, resolved: dict[str, Any]):
        self.cfg, self.run_dir = cfg, run_dir
        tc = cfg.train
        torch.set_num_threads(tc.torch_threads)
        seed_everything(cfg.seed)
        self.env = make_vec_env(cfg.env, tc.num_envs, seed=cfg.seed)
        self.eval_env = make_vec_env(cfg.env, tc.eval_episodes, seed=cfg.seed + 1_000_003)
        self.spec = self.env.spec
        self.learner = Learner(self.spec, cfg.algo)
        self.runner = Runner(self.env, tc.fragment_len, self.learner.policy.hidden_dim,
                             seed=cfg.seed)
        self.eval_rng = np.random.default_rng(cfg.seed + 7)
        self.video_env = None
        if tc.eval_video:
            self.video_env = make_vec_env(cfg.env, 1, seed=cfg.seed + 2_000_003)
            if not hasattr(self.video_env, "render_rgb"):
                warnings.warn(f"env {getattr(cfg.env, 'name', '?')} cannot render frames: "
                              "train.eval_video is ignored", stacklevel=2)
                self.video_env = None
        self.ckpt_dir = run_dir / "checkpoints"
        self.env_steps = 0
        self.wall_offset = 0.0
        self.last_eval: dict[str, float] = {}
        run_id = None
        if cfg.resume:
            run_id = self._resume()
        env_name = getattr(cfg.env, "name", "env")
        self.wandb = WandbSink(
            cfg.logger.wandb, run_dir, name=f"{cfg.algo.name}_{env_name}_s{cfg.seed}",
            group=cfg.name, job_type=cfg.algo.name, config=resolved, run_id=run_id)
        self.logger = Logger(run_dir, self.wandb,
                             Progress(tc.total_env_steps, self.env_steps, cfg.logger.progress,
                                      desc=cfg.name))

    def _resume(self) -> str | None:
        path = latest_checkpoint(self.ckpt_dir)
        if path is None:
            return None
        state = load_checkpoint(path)
        self.learner.load_state_dict_full(state["learner"])
        self.env_steps = self.runner.env_steps = int(state["env_steps"])
        self.wall_offset = float(state.get("wall_time_s", 0.0))
        return state.get("wandb_run_id")

    def state(self, wall: float) -> dict[str, Any]:
        return {
            "env_steps": self.env_steps,
            "wall_time_s": wall,
            "learner": self.learner.state_dict_full(),
            "wandb_run_id": self.wandb.run_id,
            "rng": {"python": random.getstate(), "numpy": np.random.get_state(),
                    "torch": torch.get_rng_state()},
        }

    def evaluate(self) -> dict[str, float]:
        stats = evaluate(self.eval_env, self.learner.policy, self.learner.policy.hidden_dim,
                         seed=int(self.eval_rng.integers(2**31)))
        if self.video_env is not None:
            self.record_video()
        return summarise_episodes("eval", stats, self.spec)

    def record_video(self) -> Path:
        """One greedy episode as ``videos/eval_<env_steps>.gif``, also logged to W&B."""
        import imageio.v3 as iio

        frames = record_episode(self.video_env, self.learner.policy,
                                self.learner.policy.hidden_dim,
                                self.cfg.train.video_max_frames,
                                seed=int(self.eval_rng.integers(2**31)))
        out = self.run_dir / "videos" / f"eval_{self.env_steps:012d}.gif"
        out.parent.mkdir(exist_ok=True)
        iio.imwrite(out, np.stack(frames), duration=1000 / self.cfg.train.video_fps, loop=0)
        self.wandb.log_video("eval/video", out, self.env_steps)
        return out

    def run(self) -> dict[str, Any]:
        tc = self.cfg.train
        start = time.perf_counter() - self.wall_offset
        window_t, window_steps = time.perf_counter(), self.env_steps
        t_collect = t_update = 0.0
        next_log = self.env_steps + tc.log_every_env_steps
        next_eval = self.env_steps + tc.eval_every_env_steps if tc.eval_every_env_steps else None
        next_ckpt = (self.env_steps + tc.checkpoint_every_env_steps
                     if tc.checkpoint_every_env_steps else None)
        train_metrics: dict[str, float] = {}
        while self.env_steps < tc.total_env_steps:
            t0 = time.perf_counter()
            self.learner.policy.eps = self.learner.policy.epsilon(self.env_steps)
            ro = self.runner.collect(self.learner.policy)
            self.env_steps = self.runner.env_steps
            t1 = time.perf_counter()
            train_metrics = self.learner.update(ro, self.env_steps)
            t2 = time.perf_counter()
            t_collect += t1 - t0
            t_update += t2 - t1
            done = self.env_steps >= tc.total_env_steps
            row: dict[str, float] = {}
            if next_eval is not None and self.env_steps >= next_eval and not done:
                row.update(self.evaluate())
                self.last_eval = row.copy()
                next_eval += tc.eval_every_env_steps
            if self.env_steps >= next_log or done or row:
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
                while next_log <= self.env_steps:
                    next_log += tc.log_every_env_steps
            if next_ckpt is not None and self.env_steps >= next_ckpt and not done:
                save_checkpoint(self.ckpt_dir, self.env_steps,
                                self.state(time.perf_counter() - start), tc.keep_checkpoints)
                while next_ckpt <= self.env_steps:
                    next_ckpt += tc.checkpoint_every_env_steps
        final = self.evaluate()
        wall = time.perf_counter() - start
        self.logger.log(self.env_steps, {**final, "perf/wall_time_s": wall})
        save_checkpoint(self.ckpt_dir, self.env_steps, self.state(wall), tc.keep_checkpoints)
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
        _write_json_atomic(self.run_dir / "summary.json", summary)
        self.wandb.summary(summary)
        if self.cfg.logger.plots:
            self.logger.jsonl.f.flush()
            for name, path in make_plots(self.run_dir, list(self.cfg.logger.plots)).items():
                self.wandb.log_image(f"plots/{name}", path, self.env_steps)
        self.logger.close()
        return summary


def _write_json_atomic(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def _only_hydra_files(run_dir: Path) -> bool:
    return all(p.name in (".hydra", "train.log") for p in run_dir.iterdir())


register_configs()


@hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
def main(dcfg: DictConfig) -> float:
    """Hydra task: returns the final greedy evaluation return (the sweep objective)."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        cfg = to_config(dcfg)
    except ConfigError as e:
        if run_dir.is_dir() and _only_hydra_files(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    resolved = OmegaConf.to_container(dcfg, resolve=True)
    summary = Trainer(cfg, run_dir, resolved).run()  # type: ignore[arg-type]
    shown = {k: summary[k] for k in ("env_steps", "wall_time_s", "steps_per_s",
                                     "eval/return_mean", "eval/success_rate") if k in summary}
    print(json.dumps(shown))
    print(f"run directory: {run_dir}")
    return float(summary.get("eval/return_mean", float("nan")))


if __name__ == "__main__":
    main()
