"""Pong's emulator back ends behind :class:`marl.envs.atari.PongCore`: ale-py's
``AtariVectorEnv`` (batched C++ preprocessing, no RAM) and gymnasium's ALE envs (one
emulator each, RAM, exact save/restore). See :mod:`marl.envs.atari` for when each runs."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from marl.envs.configs import PongEnvConfig

STANDARD_ACTIONS = ("NOOP", "FIRE", "RIGHT", "LEFT", "RIGHTFIRE", "LEFTFIRE")
KARPATHY_ACTIONS = ("UP", "DOWN")
KARPATHY_ALE_ACTIONS = (2, 3)
"""Indices in Pong's minimal action set of UP (RIGHT) and DOWN (LEFT)."""
STACK, SIZE = 4, 84
SCREEN = (210, 160, 3)
KARPATHY_SHAPE = (80, 80)
KARPATHY_DIM = 80 * 80
RAM_SIZE = 128
PRIME_FRAMES = 20
"""Frames acted to set the sticky-action memory after restoring an emulator state."""


class AleVectorBackend:
    """ale-py's ``AtariVectorEnv`` with ``SAME_STEP`` auto-reset (no RAM access)."""

    has_ram = False

    def __init__(self, cfg: PongEnvConfig, num_envs: int) -> None:
        from ale_py.vector_env import AtariVectorEnv
        from gymnasium.vector import AutoresetMode

        if cfg.mode == "karpathy":
            image = {"img_height": 210, "img_width": 160, "grayscale": False, "stack_num": 1}
            image.update(maxpool=False, use_fire_reset=False)
        else:
            image = {"img_height": SIZE, "img_width": SIZE, "grayscale": True, "stack_num": STACK}
            image.update(maxpool=True, use_fire_reset=True)
        self.vec = AtariVectorEnv(
            "pong",
            num_envs=num_envs,
            num_threads=cfg.num_threads or min(num_envs, os.cpu_count() or 1),
            max_num_frames_per_episode=cfg.max_episode_frames,
            repeat_action_probability=float(cfg.repeat_action_probability),
            full_action_space=False,
            autoreset_mode=AutoresetMode.SAME_STEP,
            frameskip=cfg.effective_frameskip,
            noop_max=cfg.effective_noop_max,
            episodic_life=False,
            reward_clipping=False,
            **image,
        )
        self.n_actions = len(self.vec.ale.get_action_set())
        self.squeeze = cfg.mode == "karpathy"  # [B, 1, 210, 160, 3] -> [B, 210, 160, 3]

    def reset(self, seed: int | None) -> np.ndarray:
        frames, _ = self.vec.reset(seed=seed)
        return frames[:, 0] if self.squeeze else frames

    def step(self, actions: np.ndarray):
        """-> frames, reward, terminated, truncated, final frames (valid where ended)."""
        frames, reward, terminated, truncated, info = self.vec.step(actions.astype(np.int32))
        final = info.get("final_obs")
        if self.squeeze:
            frames = frames[:, 0]
            final = None if final is None else final[:, 0]
        return frames, reward, terminated, truncated, final

    def close(self) -> None:
        self.vec.close()


class GymnasiumBackend:
    """``SyncVectorEnv`` of ``ale_py.env.AtariEnv`` (raw RGB screens) with auto-reset
    disabled: ended envs are reset by mask after their final screen and RAM are read."""

    has_ram = True

    def __init__(self, cfg: PongEnvConfig, num_envs: int) -> None:
        from ale_py.env import AtariEnv
        from gymnasium.vector import AutoresetMode, SyncVectorEnv

        def make() -> AtariEnv:
            return AtariEnv(
                game="pong",
                obs_type="rgb",
                frameskip=cfg.effective_frameskip,
                repeat_action_probability=float(cfg.repeat_action_probability),
                full_action_space=False,
                max_num_frames_per_episode=cfg.max_episode_frames,
            )

        self.vec = SyncVectorEnv(
            [make] * num_envs, copy=False, autoreset_mode=AutoresetMode.DISABLED
        )
        self._ales = [env.unwrapped.ale for env in self.vec.envs]
        self.n_actions = int(self.vec.single_action_space.n)
        self.ram = np.zeros((num_envs, RAM_SIZE), np.uint8)
        self.final_ram = np.zeros((num_envs, RAM_SIZE), np.uint8)
        # Minimal-set index of each emulator's latest action (0 = NOOP after a reset):
        # the sticky-action memory, which ALE's cloneState leaves out (see save()).
        self.last_action = np.zeros(num_envs, np.int64)

    def _read_ram(self, envs) -> None:
        for i in envs:
            self._ales[i].getRAM(self.ram[i])

    def reset(self, seed: int | None) -> np.ndarray:
        frames, _ = self.vec.reset(seed=seed)
        self._read_ram(range(len(self._ales)))
        self.last_action[:] = 0
        return frames

    def step(self, actions: np.ndarray):
        """-> frames, reward, terminated, truncated, final frames (valid where ended)."""
        frames, reward, terminated, truncated, _ = self.vec.step(actions.astype(np.int64))
        self._read_ram(range(len(self._ales)))
        self.last_action[:] = actions
        done = terminated | truncated
        if not done.any():
            return frames, reward, terminated, truncated, None
        final = frames.copy()  # the reset below overwrites the shared buffer (copy=False)
        self.final_ram[done] = self.ram[done]
        frames, _ = self.vec.reset(options={"reset_mask": done})
        self._read_ram(np.flatnonzero(done))
        self.last_action[done] = 0
        return frames, reward, terminated, truncated, final

    def save(self) -> dict[str, Any]:
        """Every emulator's state, RNG included (``ALEState``, picklable)."""
        return {"ale": [ale.cloneState(include_rng=True) for ale in self._ales],
                "ram": self.ram.copy(), "last_action": self.last_action.copy()}

    def restore(self, saved: dict[str, Any]) -> None:
        """Restore :meth:`save` output.

        ale-py 0.12's ``ALEState`` leaves out the sticky-action memory (the action a
        sticky frame repeats). It is primed here: acting the saved last action a few
        frames sets it (each frame keeps it with probability >= 1 - p, so after
        ``PRIME_FRAMES`` frames it is wrong with probability p^20 ~ 1e-12), and restoring
        the state again undoes those frames, RNG included.
        """
        for i, (ale, state) in enumerate(zip(self._ales, saved["ale"], strict=True)):
            action = self.vec.envs[i].unwrapped._action_set[int(saved["last_action"][i])]
            ale.restoreState(state)
            for _ in range(PRIME_FRAMES):
                ale.act(action)
            ale.restoreState(state)
        self.ram[:] = saved["ram"]
        self.last_action[:] = saved["last_action"]

    def close(self) -> None:
        self.vec.close()
