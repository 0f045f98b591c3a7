"""k-armed Gaussian bandit: the one-step, one-agent degenerate case of the framework.

One agent, ``player_0``, pulls one of ``k = len(means)`` arms (``Discrete(k)``) and gets a
reward drawn from ``N(means[a], std**2)``. Every episode is one pull: every step
terminates (``terminated=True``, never ``truncated``). The observation is the constant
``[1.0]`` (O = 1) and so is the global state (S = 1): there is nothing to see, the policy
is a preference over arms. With COMA and N = 1 the counterfactual baseline reduces to
``sum_a pi(a) Q(a)``, i.e. the classic policy-gradient bandit with a learned baseline.

Episode statistics: ``regret`` = ``max(means) - means[a]`` (expected regret of the pull,
not of the noisy reward) and ``optimal`` = 1.0 if ``a`` is one of the best arms (ties
included: every arm whose mean equals the maximum is optimal), else 0.0. ``optimal`` is
the success metric.

Two front ends share one implementation of the rules: :class:`BanditCore`, the batched
numpy :class:`~marl.envs.base.VecEnv` the runner uses, and :class:`BanditEnv`, a
PettingZoo ``ParallelEnv`` over a core with one env and no auto-reset. The core saves
and restores its exact state (``get_state`` / ``set_state``: the reward generator and the
buffers), so a resumed run draws the same rewards as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from marl.envs.base import EnvSpec, VecBuffers, buffers_state, restore_buffers
from marl.envs.classic import (
    AGENT,
    as_config,
    check_batch_actions,
    is_int,
    single_agent_action,
    with_overrides,
)

EPISODE_METRICS = ("regret", "optimal")


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(
        v, (bool, np.bool_)
    )


@dataclass
class BanditEnvConfig:
    """Configuration of the k-armed Gaussian bandit (see the module docstring)."""

    means: list[float] = field(default_factory=lambda: [1.0, 0.9, 0.9, 1.0])
    """Mean reward of each arm (k = len(means)); at least 2 finite numbers."""
    std: float = 1.0
    """Standard deviation of every arm's Gaussian reward; finite and >= 0 (0 = exact)."""
    name: str = "bandit"
    """Registry key of the env; must be "bandit"."""

    def __post_init__(self) -> None:
        if self.name != "bandit":
            raise ValueError(f"env.name = {self.name!r} is invalid: must be 'bandit'")
        means: list = []
        if not isinstance(self.means, (str, bytes, Mapping)):
            try:
                means = list(self.means)  # list, tuple, numpy array or OmegaConf ListConfig
            except TypeError:
                means = []
        if len(means) < 2 or not all(_is_real(m) and math.isfinite(m) for m in means):
            raise ValueError(
                f"env.means = {self.means!r} is invalid: must be a list of at least 2 "
                "finite numbers (one mean reward per arm)"
            )
        self.means = [float(m) for m in means]
        if not _is_real(self.std) or not math.isfinite(self.std) or self.std < 0:
            raise ValueError(f"env.std = {self.std!r} is invalid: must be a finite number >= 0")
        self.std = float(self.std)

    @property
    def n_arms(self) -> int:
        return len(self.means)


class BanditCore:
    """``num_envs`` bandits pulled at once in numpy (a :class:`VecEnv`).

    Every step ends every episode. With ``autoreset=True`` (the runner's case) the next
    episode starts at once: ``obs``/``state`` stay the constant, ``final_obs``/
    ``final_state`` hold the same constant and ``episode`` the pull's regret and
    optimality. With ``autoreset=False`` ``alive`` turns False after the pull and stepping
    again raises RuntimeError until ``reset``.
    """

    def __init__(
        self,
        cfg: BanditEnvConfig | Mapping | None = None,
        num_envs: int = 1,
        seed: int | None = None,
        autoreset: bool = True,
    ) -> None:
        if not is_int(num_envs) or num_envs < 1:
            raise ValueError(f"num_envs = {num_envs!r} is invalid: must be an int >= 1")
        self.cfg = cfg = as_config(cfg, BanditEnvConfig)
        self.num_envs = b = int(num_envs)
        self.autoreset = bool(autoreset)
        self.spec = EnvSpec(
            agents=(AGENT,),
            obs_shape=(1,),
            state_dim=1,
            n_actions=cfg.n_arms,
            episode_metrics=EPISODE_METRICS,
            success_metric="optimal",
        )
        self.buf = VecBuffers.allocate(self.spec, b)
        for arr in (self.buf.obs, self.buf.state, self.buf.final_obs, self.buf.final_state):
            arr.fill(1.0)
        self.means = np.asarray(cfg.means, np.float64)
        best = self.means.max()
        self._regret = (best - self.means).astype(np.float32)
        self._optimal = (self.means == best).astype(np.float32)
        self._std = cfg.std
        self._noise = np.zeros(b, np.float64)
        self._reward = self.buf.reward[:, 0]  # [B] view
        self._ended = False
        self._rng = np.random.default_rng(seed)
        self.reset(None)

    def reset(self, seed: int | None = None) -> VecBuffers:
        """Start a new episode in every env; a ``seed`` reseeds the batch's generator."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        buf = self.buf
        buf.reward[:] = 0.0
        buf.terminated[:] = False
        buf.truncated[:] = False
        buf.alive[:] = True
        self._ended = False
        return buf

    def step(self, actions: np.ndarray) -> VecBuffers:
        """Pull arm ``actions[b, 0]`` in every env b; every episode ends."""
        actions = check_batch_actions(actions, self.spec, self.num_envs)
        if self._ended:
            raise RuntimeError(
                "the episodes have ended (autoreset=False): call reset() before stepping again"
            )
        buf = self.buf
        arm = actions[:, 0]
        if self._std > 0.0:
            self._rng.standard_normal(out=self._noise)
            self._noise *= self._std
            self._noise += self.means.take(arm)
            np.copyto(self._reward, self._noise, casting="same_kind")
        else:
            np.take(self.means, arm, out=self._noise)
            np.copyto(self._reward, self._noise, casting="same_kind")
        buf.terminated[:] = True
        buf.truncated[:] = False
        np.take(self._regret, arm, out=buf.episode["regret"])
        np.take(self._optimal, arm, out=buf.episode["optimal"])
        # obs / state / final_obs / final_state are the constant 1.0 and never change.
        if not self.autoreset:
            self._ended = True
            buf.alive[:] = False
        return buf

    def close(self) -> None:
        """Nothing to release."""

    # ------------------------------------------------------------------ exact resume
    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue exactly (see ``ResumableVecEnv``): the reward
        generator's state, the ended flag and copies of the buffers the runner reads."""
        return {
            "num_envs": self.num_envs,
            "config": dataclasses.asdict(self.cfg),
            "autoreset": self.autoreset,
            "ended": self._ended,
            "rng": self._rng.bit_generator.state,
            "buf": buffers_state(self.buf),
            "episode": {k: v.copy() for k, v in self.buf.episode.items()},
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_state` output into this env (same config and ``num_envs``)."""
        mine = dataclasses.asdict(self.cfg)
        theirs = state["config"]
        if state["num_envs"] != self.num_envs or theirs != mine:
            diff = sorted(k for k in mine if mine[k] != theirs.get(k))
            raise ValueError(
                f"saved bandit state is for num_envs={state['num_envs']} and a config "
                f"differing in {diff or 'nothing'}; this env has num_envs={self.num_envs}"
            )
        if state["autoreset"] != self.autoreset:
            raise ValueError(
                f"saved bandit state has autoreset={state['autoreset']}, this env "
                f"autoreset={self.autoreset}"
            )
        restore_buffers(self.buf, state["buf"])
        for k, v in state["episode"].items():
            self.buf.episode[k][:] = v
        self._ended = bool(state["ended"])
        self._rng.bit_generator.state = state["rng"]


class BanditEnv(ParallelEnv):
    """PettingZoo ``ParallelEnv`` of the bandit: a :class:`BanditCore` with one env.

    ``BanditEnv(config, **overrides)``, e.g. ``BanditEnv(means=[0.0, 1.0], std=0.5)``.
    Every episode is one step; after it ``infos["player_0"]`` holds ``regret`` and
    ``optimal`` of the pull (empty at reset).
    """

    metadata: ClassVar[dict[str, Any]] = {
        "name": "bandit_v0",
        "render_modes": [],
        "is_parallelizable": True,
    }

    def __init__(self, config: BanditEnvConfig | Mapping | None = None, **kwargs: Any) -> None:
        super().__init__()
        cfg = with_overrides(config, BanditEnvConfig, kwargs)
        self.config = cfg
        self.render_mode = None
        self.core = BanditCore(cfg, num_envs=1, autoreset=False)
        self.possible_agents = [AGENT]
        self.agents: list[str] = []
        self._obs_space = spaces.Box(0.0, 1.0, (1,), np.float32)
        self._act_space = spaces.Discrete(cfg.n_arms)
        self.observation_spaces = {AGENT: self._obs_space}
        self.action_spaces = {AGENT: self._act_space}
        self.state_space = spaces.Box(0.0, 1.0, (1,), np.float32)
        self._actions = np.zeros((1, 1), np.int64)

    def observation_space(self, agent: str) -> spaces.Box:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Discrete:
        return self.action_spaces[agent]

    def state(self) -> np.ndarray:
        return self.core.buf.state[0].copy()

    def reset(self, seed: int | None = None, options: dict | None = None):
        self.core.reset(seed)
        self.agents = [AGENT]
        return {AGENT: self.core.buf.obs[0, 0].copy()}, {AGENT: {}}

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise RuntimeError(
                "BanditEnv.step() called with no live agents: the episode has ended (or "
                "reset() was never called); call reset() first"
            )
        self._actions[0, 0] = single_agent_action(actions, self.core.spec.n_actions)
        buf = self.core.step(self._actions)
        self.agents = []
        infos = {
            AGENT: {
                "regret": float(buf.episode["regret"][0]),
                "optimal": float(buf.episode["optimal"][0]),
            }
        }
        return (
            {AGENT: buf.obs[0, 0].copy()},
            {AGENT: float(buf.reward[0, 0])},
            {AGENT: True},
            {AGENT: False},
            infos,
        )

    def render(self) -> None:
        return None

    def close(self) -> None:
        self.core.close()


def parallel_env(**kwargs: Any) -> BanditEnv:
    """PettingZoo-style factory: ``parallel_env(means=[...], std=...)``."""
    return BanditEnv(**kwargs)
