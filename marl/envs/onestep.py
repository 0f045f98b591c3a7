"""What the one-step games share: a batched core whose every step ends every episode.

The bandit and the matrix games observe nothing: observation and state are the constant
``[1.0]`` (O = S = 1, ``final_obs`` / ``final_state`` the same constant). A step checks the
actions, lets the game fill ``reward`` and ``episode`` (:meth:`OneStepCore._play`) and
ends every episode with ``terminated``. With ``autoreset=True`` (the runner's case) the
next episode starts at once; with ``autoreset=False`` ``alive`` turns False and stepping
again raises RuntimeError until ``reset``. The exact state (``ResumableVecEnv``) is the
game's generator, whether the episodes have ended and the buffers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from marl.envs.base import EnvSpec, VecBuffers, load_state, save_state
from marl.envs.checks import check_batch_actions, check_num_envs


class OneStepCore:
    """Base of a one-step game's batched core; subclasses define :meth:`_play`."""

    kind = "one-step game"
    """What the game is called in error messages."""

    def __init__(self, spec: EnvSpec, num_envs: int, seed: int | None, autoreset: bool) -> None:
        self.num_envs = check_num_envs(num_envs)
        self.autoreset = bool(autoreset)
        self.spec = spec
        self.buf = buf = VecBuffers.allocate(spec, self.num_envs)
        for arr in (buf.obs, buf.state, buf.final_obs, buf.final_state):
            arr.fill(1.0)
        self._ended = False
        self._rng = np.random.default_rng(seed)
        self.reset(None)

    def _play(self, actions: np.ndarray) -> None:
        """Write ``buf.reward`` and ``buf.episode`` for ``actions`` [B, N] (checked)."""
        raise NotImplementedError

    def _config(self) -> dict[str, Any]:
        """What a saved state must match besides ``num_envs`` (plain, comparable values)."""
        raise NotImplementedError

    def reset(self, seed: int | None = None) -> VecBuffers:
        """Start a new episode in every env; a ``seed`` reseeds the batch's generator."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        buf = self.buf
        buf.start_episodes()
        self._ended = False
        return buf

    def step(self, actions: np.ndarray) -> VecBuffers:
        """Play ``actions`` [B, N] in every env; every episode ends."""
        actions = check_batch_actions(actions, self.spec, self.num_envs)
        if self._ended:
            raise RuntimeError(
                "the episodes have ended (autoreset=False): call reset() before stepping again"
            )
        self._play(actions)
        buf = self.buf
        buf.terminated[:] = True
        buf.truncated[:] = False
        if not self.autoreset:
            self._ended = True
            buf.alive[:] = False
        return buf

    def close(self) -> None:
        """Nothing to release."""

    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue exactly (see ``ResumableVecEnv``)."""
        return save_state(self, {**self._config(), "autoreset": self.autoreset},
                          ended=self._ended, rng=self._rng.bit_generator.state,
                          episode={k: v.copy() for k, v in self.buf.episode.items()})

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_state` output into this env (same game and ``num_envs``)."""
        load_state(self, self.kind, state, {**self._config(), "autoreset": self.autoreset})
        for k, v in state["episode"].items():
            self.buf.episode[k][:] = v
        self._ended = bool(state["ended"])
        self._rng.bit_generator.state = state["rng"]
