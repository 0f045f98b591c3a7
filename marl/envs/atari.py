"""Atari Pong (ale-py, the ``atari`` extra) as a one-agent env (``player_0``), in two
preprocessing modes.

Rewards are the game's (+1 / -1 per point, never clipped). ``terminated`` = game over
(a side reached 21); ``truncated`` = ``max_episode_frames`` emulator frames came first
(termination wins when both happen in one step). Ended envs are reset within the step.

``mode="standard"``: the DQN/PPO setup, done by ale-py's C++ vector env
:class:`ale_py.vector_env.AtariVectorEnv` (``num_threads`` threads, ``SAME_STEP``
auto-reset): 84x84 greyscale, max-pooled over the last two frames of each
``frameskip = 4`` repeat, stacked 4 deep, up to ``noop_max = 30`` no-ops and a FIRE at
each reset. Observation uint8 ``(4, 84, 84)``; Pong's 6 minimal actions (NOOP, FIRE,
RIGHT = up, LEFT = down, RIGHTFIRE, LEFTFIRE). No state of its own (S = 0,
``state_is_concat_obs``): the learner builds it from the encoded frames.

``mode="karpathy"``: Karpathy's ``pg-pong.py``. The raw 210x160 RGB screen after a
``frameskip = 3`` repeat (the mean of ``Pong-v0``'s random 2..4 skip) with sticky actions
(0.25), no no-ops, no FIRE reset, goes through :func:`karpathy_preprocess`; the
observation is the difference of the current and previous 80x80 images (zero on an
episode's first frame), float32 ``(6400,)`` in {-1, 0, 1}. Two actions: 0 = UP, 1 = DOWN
(minimal-set 2 = RIGHT, 3 = LEFT). Two emulator back ends (``backend``):

* ``"gymnasium"`` (default): a ``SyncVectorEnv`` of ``ale_py.env.AtariEnv`` without
  auto-reset (ended envs reset by mask). It reads the RAM, so the state is ``RAM / 255``
  (S = 128): the difference frame alone hides a paddle that stands still. Its final
  observations are exact, and it alone resumes exactly (``get_state`` / ``set_state``:
  each emulator clones its state with its RNG).
* ``"ale_vector"``: ``AtariVectorEnv`` returning raw screens, preprocessed as one numpy
  batch on C++ threads; no RAM (state = observation, S = 6400), no exact resume (a
  resumed run starts new games). Barely faster on 2 shared cores (B = 16: ~4.1k vs ~4.0k
  env steps/s).

Known ale-py 0.12.1 limitation (``PreprocessedEnv::step``): ``AtariVectorEnv`` leaves its
frame-skip loop on game over / truncation before grabbing the last screen, so a final
observation is partly stale (karpathy: the previous step's screen, an all-zero final
difference; standard: the newest stacked frame is the previous step's). Rewards and
flags are exact, and only a truncated episode's bootstrap reads its final observation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from marl.envs.atari_backends import (  # noqa: F401 - the constants are this module's API
    KARPATHY_ACTIONS,
    KARPATHY_ALE_ACTIONS,
    KARPATHY_DIM,
    KARPATHY_SHAPE,
    PRIME_FRAMES,
    RAM_SIZE,
    SCREEN,
    SIZE,
    STACK,
    STANDARD_ACTIONS,
    AleVectorBackend,
    GymnasiumBackend,
)
from marl.envs.base import AGENT, EnvSpec, VecBuffers, load_state, save_state
from marl.envs.checks import as_config, check_batch_actions, check_num_envs
from marl.envs.configs import PongEnvConfig
from marl.envs.parallel import CoreParallelEnv


def karpathy_preprocess(frames: np.ndarray) -> np.ndarray:
    """Pong RGB screens uint8 ``[..., 210, 160, 3]`` -> float32 ``[..., 80, 80]`` in {0, 1}.

    pg-pong's ``prepro``, vectorised over the leading axes: crop rows 35..194 (drops the
    score and the top and bottom walls), keep every second row and column of the red
    channel, erase the two background colours (red 144 and 109), set everything else
    (paddles and ball) to 1.
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.shape[-3:] != SCREEN:
        raise ValueError(
            f"frames must be uint8 [..., 210, 160, 3] screens, got {frames.dtype} "
            f"{tuple(frames.shape)}"
        )
    red = frames[..., 35:195:2, ::2, 0]
    keep = red != 0
    keep &= red != 144
    keep &= red != 109
    return keep.astype(np.float32)


def pong_spec(cfg: PongEnvConfig) -> EnvSpec:
    """The :class:`EnvSpec` of a Pong config."""
    if cfg.mode == "standard":
        return EnvSpec(
            agents=(AGENT,),
            obs_shape=(STACK, SIZE, SIZE),
            # No state of its own: the learner builds it from the encoded frames
            # (state_is_concat_obs with pixels), so no 28k-float copy per step is stored.
            state_dim=0,
            n_actions=len(STANDARD_ACTIONS),
            obs_dtype="uint8",
            state_is_concat_obs=True,
            episode_limit=cfg.max_episode_frames,  # frames: an upper bound on steps
        )
    ram = cfg.effective_backend == "gymnasium"
    return EnvSpec(
        agents=(AGENT,),
        obs_shape=(KARPATHY_DIM,),
        state_dim=RAM_SIZE if ram else KARPATHY_DIM,
        n_actions=len(KARPATHY_ACTIONS),
        state_is_concat_obs=not ram,
        episode_limit=cfg.max_episode_frames,  # frames: an upper bound on steps
    )


# ---------------------------------------------------------------------- batched env
class PongCore:
    """``num_envs`` Pong games stepped at once (a :class:`VecEnv`), see the module docstring.

    Auto-resets ended envs within the step. ``seed`` seeds the first reset;
    ``reset(seed)`` seeds env ``i`` with ``seed + i``, ``reset(None)`` draws fresh seeds.
    """

    def __init__(
        self,
        cfg: PongEnvConfig | Mapping | None = None,
        num_envs: int = 1,
        seed: int | None = None,
    ) -> None:
        self.num_envs = b = check_num_envs(num_envs)
        self.cfg = cfg = as_config(cfg, PongEnvConfig)
        self.karpathy = cfg.mode == "karpathy"
        self.spec = pong_spec(cfg)
        self.buf = VecBuffers.allocate(self.spec, b)
        if cfg.effective_backend == "gymnasium":
            self._emu: AleVectorBackend | GymnasiumBackend = GymnasiumBackend(cfg, b)
        else:
            self._emu = AleVectorBackend(cfg, b)
        if self._emu.n_actions != len(STANDARD_ACTIONS):
            raise RuntimeError(f"unexpected Pong action set of {self._emu.n_actions} actions")
        if self.karpathy:
            self._action_map = np.array(KARPATHY_ALE_ACTIONS, np.int64)
        else:
            self._action_map = np.arange(len(STANDARD_ACTIONS), dtype=np.int64)
        self._obs_flat = self.buf.obs.reshape(b, -1)  # views of the [B, 1, ...] buffers
        self._final_flat = self.buf.final_obs.reshape(b, -1)
        self._reward = self.buf.reward[:, 0]
        if self.karpathy:
            self._obs_img = self.buf.obs.reshape(b, *KARPATHY_SHAPE)
            self._prev = np.zeros((b, *KARPATHY_SHAPE), np.float32)
            self._frames = np.zeros((b, *SCREEN), np.uint8)
            self._final_frames = np.zeros((b, *SCREEN), np.uint8)
        self.reset(seed)
        if self._emu.has_ram:  # exact resume: the gymnasium back end only (module doc)
            self.get_state = self._get_state
            self.set_state = self._set_state

    # ------------------------------------------------------------------ VecEnv API
    def reset(self, seed: int | None = None) -> VecBuffers:
        """Start a new game in every env (env ``i`` seeded with ``seed + i`` if given)."""
        frames = self._emu.reset(None if seed is None else int(seed))
        buf = self.buf
        if self.karpathy:
            self._frames = frames
            self._prev = karpathy_preprocess(frames)
            buf.obs[:] = 0.0
        else:
            buf.obs[:, 0] = frames
        self._write_state()
        buf.start_episodes()
        return buf

    def _write_state(self) -> None:
        if self._emu.has_ram:
            np.multiply(self._emu.ram, np.float32(1 / 255), out=self.buf.state)
        elif self.karpathy:
            self.buf.state[:] = self._obs_flat

    def step(self, actions: np.ndarray) -> VecBuffers:
        """Apply ``actions`` [B, 1] in every env, auto-resetting the ended ones."""
        actions = check_batch_actions(actions, self.spec, self.num_envs)
        frames, reward, terminated, truncated, final = self._emu.step(
            self._action_map.take(actions[:, 0])
        )
        buf = self.buf
        np.copyto(buf.terminated, terminated)
        np.greater(truncated, terminated, out=buf.truncated)  # truncated and not terminated
        np.copyto(self._reward, reward, casting="unsafe")
        done = buf.terminated | buf.truncated
        e = np.flatnonzero(done) if done.any() else None
        if self.karpathy:
            cur = karpathy_preprocess(frames)
            np.subtract(cur, self._prev, out=self._obs_img)
            if e is not None:
                last = final[e]
                self._final_frames[e] = last
                diff = karpathy_preprocess(last) - self._prev[e]
                self._final_flat[e] = diff.reshape(len(e), -1)
                self._obs_flat[e] = 0.0  # first frame of the new episode
            self._prev = cur
            self._frames = frames
        else:
            buf.obs[:, 0] = frames
            if e is not None:
                buf.final_obs[e, 0] = final[e]
        self._write_state()
        if e is not None:
            if self._emu.has_ram:
                buf.final_state[e] = self._emu.final_ram[e] * np.float32(1 / 255)
            elif self.karpathy:
                buf.final_state[e] = self._final_flat[e]
        return buf

    def close(self) -> None:
        self._emu.close()

    # ------------------------------------------------------------------ exact resume
    def _get_state(self) -> dict[str, Any]:
        """Every emulator's state with its RNG and sticky-action memory, the frame
        history of karpathy mode and copies of the buffers the runner reads."""
        assert isinstance(self._emu, GymnasiumBackend)
        return save_state(self, dataclasses.asdict(self.cfg), emulators=self._emu.save(),
                          prev=self._prev.copy(), frames=self._frames.copy())

    def _set_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_state` output (same config and ``num_envs``)."""
        assert isinstance(self._emu, GymnasiumBackend)
        load_state(self, "Pong", state, dataclasses.asdict(self.cfg))
        self._emu.restore(state["emulators"])
        self._prev = state["prev"].copy()
        self._frames = state["frames"].copy()

    # ------------------------------------------------------------------ video
    def render_rgb(self, env_index: int = 0, final: bool = False) -> np.ndarray:
        """Env ``env_index``'s screen as uint8 RGB ``[H, W, 3]``, a fresh array.

        Karpathy mode: the raw 210x160 screen. Standard mode: the newest frame of the
        84x84 greyscale stack (what the agent sees; ale-py returns nothing else),
        repeated into 3 channels. ``final=True`` gives the last screen of the episode that
        ended in the latest step instead (stale if env ``env_index`` did not just end).
        """
        if not 0 <= env_index < self.num_envs:
            raise ValueError(
                f"env_index = {env_index} is invalid: must be in 0..{self.num_envs - 1}"
            )
        if self.karpathy:
            return (self._final_frames if final else self._frames)[env_index].copy()
        grey = (self.buf.final_obs if final else self.buf.obs)[env_index, 0, -1]
        return np.repeat(grey[:, :, None], 3, axis=2)


# ---------------------------------------------------------------------- PettingZoo facade
class PongEnv(CoreParallelEnv):
    """One-agent PettingZoo ``ParallelEnv`` of Pong over a one-env :class:`PongCore`.

    ``PongEnv(config, render_mode, **overrides)``, e.g. ``PongEnv(mode="karpathy")``.
    ``render()`` (``"rgb_array"``) is :meth:`PongCore.render_rgb`. Standard mode's core has
    no state (S = 0); here ``state()`` is its frame stack scaled to [0, 1], flattened.
    """

    metadata: ClassVar[dict[str, Any]] = {"name": "pong_v0", "render_modes": ["rgb_array"],
                                          "is_parallelizable": True}
    obs_bounds = (-1.0, 1.0)  # karpathy difference frames; uint8 pixels are 0..255

    def __init__(
        self,
        config: PongEnvConfig | Mapping | None = None,
        render_mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        cfg = as_config(config, PongEnvConfig, **kwargs)
        core = PongCore(cfg, num_envs=1)
        # pixels / 255 and RAM / 255 are in [0, 1]; karpathy difference frames in [-1, 1]
        self.state_bounds = (-1.0 if core.karpathy and core.spec.state_is_concat_obs else 0.0,
                             1.0)
        super().__init__(core, cfg, render_mode)

    def _state_dim(self) -> int:
        spec = self.core.spec
        return spec.state_dim or int(np.prod(spec.obs_shape))

    def state(self) -> np.ndarray:
        if self.core.spec.state_dim:
            return super().state()
        buf = self.core.buf
        obs = (buf.final_obs if self._ended else buf.obs)[0, 0]
        return obs.reshape(-1).astype(np.float32) * np.float32(1 / 255)

    def _render(self) -> np.ndarray:
        return self.core.render_rgb(0, final=self._ended)


parallel_env = PongEnv  # PettingZoo-style factory: parallel_env(mode="karpathy", render_mode=...)
