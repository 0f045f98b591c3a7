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
numpy :class:`~marl.envs.base.VecEnv` the runner uses, and :class:`BanditEnv`, the generic
PettingZoo front end (:mod:`marl.envs.parallel`) over a core with one env and no
auto-reset. The core saves
and restores its exact state (``get_state`` / ``set_state``: the reward generator and the
buffers), so a resumed run draws the same rewards as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from marl.envs.base import AGENT, EnvSpec, VecBuffers, buffers_state, restore_buffers
from marl.envs.checks import (
    as_config,
    check_batch_actions,
    check_num_envs,
    check_saved,
    with_overrides,
)
from marl.envs.configs import BanditEnvConfig
from marl.envs.parallel import CoreParallelEnv

EPISODE_METRICS = ("regret", "optimal")


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
        self.num_envs = b = check_num_envs(num_envs)
        self.cfg = cfg = as_config(cfg, BanditEnvConfig)
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
        check_saved("bandit", state, self.num_envs, dataclasses.asdict(self.cfg), state["config"])
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


class BanditEnv(CoreParallelEnv):
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
        cfg = with_overrides(config, BanditEnvConfig, kwargs)
        super().__init__(BanditCore(cfg, num_envs=1, autoreset=False), cfg)


def parallel_env(**kwargs: Any) -> BanditEnv:
    """PettingZoo-style factory: ``parallel_env(means=[...], std=...)``."""
    return BanditEnv(**kwargs)
