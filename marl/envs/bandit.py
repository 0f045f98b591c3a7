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

:class:`BanditCore` is the batched core (exact resume included: a resumed run draws the
same rewards), :class:`BanditEnv` its PettingZoo front end (:mod:`marl.envs.parallel`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from marl.envs.base import AGENT, EnvSpec
from marl.envs.checks import as_config
from marl.envs.configs import BanditEnvConfig
from marl.envs.onestep import OneStepCore
from marl.envs.parallel import CoreParallelEnv

EPISODE_METRICS = ("regret", "optimal")


class BanditCore(OneStepCore):
    """``num_envs`` bandits pulled at once (a one-step core, :mod:`marl.envs.onestep`)."""

    kind = "bandit"

    def __init__(
        self,
        cfg: BanditEnvConfig | Mapping | None = None,
        num_envs: int = 1,
        seed: int | None = None,
        autoreset: bool = True,
    ) -> None:
        self.cfg = cfg = as_config(cfg, BanditEnvConfig)
        self.means = np.asarray(cfg.means, np.float64)
        best = self.means.max()
        self._regret = (best - self.means).astype(np.float32)
        self._optimal = (self.means == best).astype(np.float32)
        self._std = cfg.std
        spec = EnvSpec(agents=(AGENT,), obs_shape=(1,), state_dim=1, n_actions=cfg.n_arms,
                       episode_metrics=EPISODE_METRICS, success_metric="optimal",
                       episode_limit=1)
        super().__init__(spec, num_envs, seed, autoreset)
        self._noise = np.zeros(self.num_envs, np.float64)
        self._reward = self.buf.reward[:, 0]  # [B] view

    def _config(self) -> dict[str, Any]:
        return dataclasses.asdict(self.cfg)

    def _play(self, actions: np.ndarray) -> None:
        """Pull arm ``actions[b, 0]`` in every env b."""
        arm = actions[:, 0]
        if self._std > 0.0:
            self._rng.standard_normal(out=self._noise)
            self._noise *= self._std
            self._noise += self.means.take(arm)
        else:
            np.take(self.means, arm, out=self._noise)
        np.copyto(self._reward, self._noise, casting="same_kind")
        np.take(self._regret, arm, out=self.buf.episode["regret"])
        np.take(self._optimal, arm, out=self.buf.episode["optimal"])


class BanditEnv(CoreParallelEnv):
    """PettingZoo ``ParallelEnv`` of the bandit: a :class:`BanditCore` with one env.

    ``BanditEnv(config, **overrides)``, e.g. ``BanditEnv(means=[0.0, 1.0], std=0.5)``.
    Every episode is one step; after it ``infos["player_0"]`` holds ``regret`` and
    ``optimal`` of the pull (empty at reset).
    """

    metadata: ClassVar[dict[str, Any]] = {"name": "bandit_v0", "render_modes": [],
                                          "is_parallelizable": True}

    def __init__(self, config: BanditEnvConfig | Mapping | None = None, **kwargs: Any) -> None:
        cfg = as_config(config, BanditEnvConfig, **kwargs)
        super().__init__(BanditCore(cfg, num_envs=1, autoreset=False), cfg)


parallel_env = BanditEnv  # PettingZoo-style factory: parallel_env(means=[...], std=...)
