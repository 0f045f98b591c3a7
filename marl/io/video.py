"""Greedy episodes as GIFs, for training's evaluations and ``marl.evaluate``: one
render-capable env, one episode played greedily, ``videos/<kind>_<env_steps>.gif``."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from marl.build import build_env
from marl.core.runner import record_episode
from marl.io.files import write_gif


def video_env(cfg: Any, seed: int) -> Any:
    """A one-copy env that can render frames, or None (with a warning) for an env that
    cannot."""
    env = build_env(cfg, 1, seed=seed)
    if hasattr(env, "render_rgb"):
        return env
    warnings.warn(f"env {getattr(cfg.env, 'name', '?')} cannot render frames: no video",
                  stacklevel=3)
    return None


def record_gif(env: Any, policy: Any, run_dir: Path, kind: str, env_steps: int,
               max_frames: int, fps: int, seed: int) -> Path:
    """One greedy episode of ``policy`` on ``env`` as ``run_dir/videos/<kind>_<env
    steps, 12 digits>.gif``."""
    frames = record_episode(env, policy, policy.hidden_dim, max_frames, seed=seed)
    return write_gif(run_dir / "videos" / f"{kind}_{env_steps:012d}.gif", frames, fps)
