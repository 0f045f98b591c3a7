"""One PettingZoo ``ParallelEnv`` front end over any batched core run with one env (B = 1).

Spaces come from the core's :class:`~marl.envs.base.EnvSpec`; ``reset`` / ``step`` /
``state`` read its buffers; actions dicts are checked with the same messages everywhere.
A subclass builds its core and, where they differ, sets its space bounds, ``infos`` and
``render``. When the core reports ``terminated`` or ``truncated`` every agent leaves
(``env.agents`` becomes empty) and observations and ``state()`` are the episode's final
ones (``final_obs`` / ``final_state``, so auto-resetting cores work too). By default
``infos[agent]`` holds the core's episode metrics after the last step, else nothing.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium
import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from marl.envs.base import VecEnv
from marl.envs.checks import check_render_mode, dict_actions


class CoreParallelEnv(ParallelEnv):
    """PettingZoo ``ParallelEnv`` over ``core``, a batched env with ``num_envs=1``."""

    metadata: ClassVar[dict[str, Any]] = {"name": "core_v0", "render_modes": [],
                                          "is_parallelizable": True}
    obs_bounds: ClassVar[tuple[float, float]] = (0.0, 1.0)
    """Bounds of the observation space (uint8 observations: 0..255 whatever this says)."""
    state_bounds: ClassVar[tuple[float, float]] = (0.0, 1.0)
    """Bounds of the state space."""

    def __init__(self, core: VecEnv, config: Any = None, render_mode: str | None = None) -> None:
        super().__init__()
        check_render_mode(render_mode, self.metadata["render_modes"])
        if core.num_envs != 1:
            raise ValueError(f"a PettingZoo front end needs a core with num_envs=1, got "
                             f"{core.num_envs}")
        self.core, self.config, self.render_mode = core, config, render_mode
        spec = core.spec
        self.possible_agents = list(spec.agents)
        self.agents: list[str] = []
        if spec.obs_dtype == "uint8":
            obs = spaces.Box(0, 255, spec.obs_shape, np.uint8)
        else:
            obs = spaces.Box(*self.obs_bounds, spec.obs_shape, np.float32)
        self.observation_spaces = {a: obs for a in self.possible_agents}
        self.action_spaces = {a: spaces.Discrete(spec.n_actions) for a in self.possible_agents}
        self.state_space = spaces.Box(*self.state_bounds, (self._state_dim(),), np.float32)
        self._actions = np.zeros((1, spec.n_agents), np.int64)
        self._ended = False

    def _state_dim(self) -> int:
        return self.core.spec.state_dim

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Discrete:
        return self.action_spaces[agent]

    def state(self) -> np.ndarray:
        buf = self.core.buf
        return (buf.final_state if self._ended else buf.state)[0].copy()

    def _observations(self) -> dict[str, np.ndarray]:
        buf = self.core.buf
        obs = (buf.final_obs if self._ended else buf.obs)[0]
        return {a: obs[i].copy() for i, a in enumerate(self.possible_agents)}

    def _infos(self) -> dict[str, dict[str, Any]]:
        """Per-agent infos after ``reset`` / ``step``: the episode metrics once it ended."""
        ep = self.core.buf.episode
        info = {k: float(ep[k][0]) for k in self.core.spec.episode_metrics} if self._ended else {}
        return {a: dict(info) for a in self.possible_agents}

    def reset(self, seed: int | None = None, options: dict | None = None):
        self.core.reset(seed)
        self.agents = list(self.possible_agents)
        self._ended = False
        return self._observations(), self._infos()

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise RuntimeError(
                f"{type(self).__name__}.step() called with no live agents: the episode has "
                "ended (or reset() was never called); call reset() first"
            )
        dict_actions(actions, self.possible_agents, self.agents, self.core.spec.n_actions,
                     self._actions[0])
        buf = self.core.step(self._actions)
        term, trunc = bool(buf.terminated[0]), bool(buf.truncated[0])
        self._ended = term or trunc
        agents = self.possible_agents
        rewards = {a: float(buf.reward[0, i]) for i, a in enumerate(agents)}
        out = (self._observations(), rewards, dict.fromkeys(agents, term),
               dict.fromkeys(agents, trunc), self._infos())
        if self._ended:
            self.agents = []
        return out

    def render(self) -> Any:
        if self.render_mode is None:
            gymnasium.logger.warn(
                f"{type(self).__name__}.render() called without a render_mode; pass one of "
                f"{self.metadata['render_modes']} to the constructor"
            )
            return None
        return self._render()

    def _render(self) -> Any:
        return None

    def close(self) -> None:
        self.core.close()
