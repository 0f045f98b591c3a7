"""A native env from outside the package: the whole of it is this file.

Two agents see the same cue, one of ``n_cues`` (a one-hot, plus the time step as a
fraction of the episode), and each is rewarded 1 for the action equal to the cue. An
episode terminates after ``length`` steps. Episode statistic: ``echoed``, the fraction
of its steps where both agents echoed the cue (the success metric).

Selected from the config, with this directory in ``plugin_path``::

    python -m marl.train env=plugin env.name=echo_env:ENV 'plugin_path=[tests/plugins]' \\
        env.options.length=3 algo=coma
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from marl.envs import EnvRow, EnvSpec, VecBuffers, check_actions


@dataclass
class EchoConfig:
    """The env's options (``env.options.*``), checked when the config is built."""

    length: int = 4
    """Steps per episode; >= 1."""
    n_cues: int = 3
    """Cues, and actions of each agent; >= 2."""

    def __post_init__(self) -> None:
        for name, lo in (("length", 1), ("n_cues", 2)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < lo:
                raise ValueError(f"env.options.{name} = {value!r} is invalid: "
                                 f"must be an int >= {lo}")


class EchoCore:
    """``num_envs`` auto-resetting echo envs stepped at once (a ``marl.envs.VecEnv``)."""

    def __init__(self, cfg: EchoConfig, num_envs: int, seed: int | None = None) -> None:
        self.cfg, self.num_envs = cfg, num_envs
        o = cfg.n_cues + 1
        self.spec = EnvSpec(agents=("left", "right"), obs_shape=(o,), state_dim=o,
                            n_actions=cfg.n_cues, episode_metrics=("echoed",),
                            success_metric="echoed", episode_limit=cfg.length)
        self.buf = VecBuffers.allocate(self.spec, num_envs)
        self._rng = np.random.default_rng(seed)
        self._t = np.zeros(num_envs, np.int64)
        self._cue = np.zeros(num_envs, np.int64)
        self._hits = np.zeros(num_envs, np.float64)

    def reset(self, seed: int | None = None) -> VecBuffers:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.buf.start_episodes()
        self._t[:] = 0
        self._hits[:] = 0.0
        self._cue[:] = self._rng.integers(self.cfg.n_cues, size=self.num_envs)
        self._observe()
        return self.buf

    def step(self, actions: np.ndarray) -> VecBuffers:
        actions = np.asarray(actions)
        check_actions(actions, self.spec)
        buf = self.buf
        echoed = actions == self._cue[:, None]  # [B, N]
        buf.reward[:] = echoed
        self._hits += echoed.all(1)
        self._t += 1
        self._cue[:] = self._rng.integers(self.cfg.n_cues, size=self.num_envs)
        self._observe()
        done = self._t >= self.cfg.length
        buf.terminated[:] = done
        buf.truncated[:] = False
        if done.any():  # record the ended episodes, then start the next ones
            buf.final_obs[done] = buf.obs[done]
            buf.final_state[done] = buf.state[done]
            buf.episode["echoed"][done] = self._hits[done] / self.cfg.length
            self._t[done] = 0
            self._hits[done] = 0.0
            self._observe()
        return buf

    def _observe(self) -> None:
        obs = np.zeros((self.num_envs, self.cfg.n_cues + 1), np.float32)
        obs[np.arange(self.num_envs), self._cue] = 1.0
        obs[:, -1] = self._t / self.cfg.length
        self.buf.obs[:] = obs[:, None, :]
        self.buf.state[:] = obs

    def close(self) -> None:
        pass


ENV = EnvRow(config=EchoConfig, factory=EchoCore)
"""The row ``env=plugin env.name=echo_env:ENV`` names."""
