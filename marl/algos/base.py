"""The contract every learner family keeps: the common config block, the
:class:`Learner` protocol, and the :class:`LearnerFamily` row of ``LEARNERS``.

A family is a config dataclass (the common block below plus its own fields) and a
learner class built as ``learner_cls(spec, cfg)``. The trainer, the evaluator and the
checkpoint code see only the protocol; nothing outside a family's package knows its
fields.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, runtime_checkable

from marl.algos.rewards import RewardConfig
from marl.core.rollout import Rollout
from marl.envs.base import EnvSpec
from marl.schema import check, check_finite_floats


@dataclass
class AlgoCommon:
    """The fields every learner family reads (``conf/algo/*.yaml``)."""

    name: str = "coma"
    """Label of the algorithm, used in run names and W&B job types."""
    learner: str = "coma"
    """Learner family: a row of marl.algos.LEARNERS (coma, vd) or a plugin module:attr."""
    gamma: float = 0.99
    """Discount factor, in (0, 1]."""
    td_lambda: float = 0.8
    """Lambda of the TD(lambda) targets, in [0, 1]."""
    optimizer: str = "adam"
    """adam or rmsprop (the COMA paper's)."""
    rmsprop_alpha: float = 0.99
    """RMSprop smoothing constant."""
    opt_eps: float = 1e-5
    """Optimiser epsilon."""
    grad_clip: float = 10.0
    """Max global gradient norm, per network."""
    actor_hidden: list[int] = field(default_factory=lambda: [64, 64])
    """Actor (agent network) widths; with rnn the first one is the GRU size."""
    rnn: bool = False
    """GRU actor (recurrent, as in the paper) instead of a feed-forward one."""
    share_actor: bool = True
    """One actor network for all agents (agent id in the input) or one per agent."""
    target_update_interval: int = 10
    """Hard target copy every this many updates (ignored with target_tau)."""
    target_tau: float | None = None
    """Polyak factor for a soft target update every step; null = hard copies."""
    eps_start: float = 0.5
    """Initial epsilon of the exploring policy (a floor on the softmax, or greedy's)."""
    eps_end: float = 0.01
    """Final epsilon."""
    eps_anneal_steps: int = 500_000
    """Env steps over which epsilon is annealed linearly."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    """What the learner's targets see of the rewards: ``algo.reward.transform``, a row of
    marl.algos.rewards.REWARD_TRANSFORMS (none, simhash) or a plugin, and its options."""

    def __post_init__(self) -> None:
        check_finite_floats(self, "algo")
        check(0.0 < self.gamma <= 1.0, "algo.gamma", self.gamma, "must be in (0, 1]")
        check(0.0 <= self.td_lambda <= 1.0, "algo.td_lambda", self.td_lambda,
              "must be in [0, 1]")
        for k in ("opt_eps", "grad_clip"):
            check(getattr(self, k) > 0, f"algo.{k}", getattr(self, k), "must be > 0")
        check(self.optimizer in ("adam", "rmsprop"), "algo.optimizer", self.optimizer,
              "choose adam or rmsprop")
        check(0.0 < self.rmsprop_alpha < 1.0, "algo.rmsprop_alpha", self.rmsprop_alpha,
              "must be in (0, 1)")
        hidden = list(self.actor_hidden)
        check(len(hidden) >= 1 and all(h >= 1 for h in hidden), "algo.actor_hidden", hidden,
              "must be a non-empty list of positive widths")
        check(self.target_update_interval >= 1, "algo.target_update_interval",
              self.target_update_interval, "must be >= 1")
        check(self.target_tau is None or 0.0 < self.target_tau <= 1.0, "algo.target_tau",
              self.target_tau, "must be null or in (0, 1]")
        for k in ("eps_start", "eps_end"):
            check(0.0 <= getattr(self, k) <= 1.0, f"algo.{k}", getattr(self, k),
                  "must be in [0, 1]")
        check(self.eps_anneal_steps >= 0, "algo.eps_anneal_steps", self.eps_anneal_steps,
              "must be >= 0")

    def check_with(self, train: Any) -> None:
        """Checks that need the rest of the run's config (``train``); none by default."""


@runtime_checkable
class Learner(Protocol):
    """What the trainer, the evaluator and the checkpoints see of any learner family."""

    policy: Any
    """What the runner acts with (:class:`marl.core.rollout.Policy`)."""

    def update(self, ro: Rollout) -> Any:
        """Learn from one rollout fragment; return raw statistics (the family row's
        ``metrics`` turns them into the row's flat metrics)."""

    def check_finite(self) -> None:
        """Raise :class:`marl.io.errors.NonFiniteError` naming a NaN/inf parameter."""

    def state_dict_full(self) -> dict[str, Any]:
        """Everything a checkpoint needs to continue bit for bit."""

    def load_state_dict_full(self, sd: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict_full`."""

    def load_networks(self, sd: dict[str, Any]) -> None:
        """Networks only, from a full state dict (fine-tuning, evaluation)."""


class LearnerFamily(NamedTuple):
    """A row of ``LEARNERS``: the family's config schema, its learner class and the
    function that turns its update statistics into metrics."""

    config: type[AlgoCommon]
    """Dataclass of the family's ``algo`` fields (the common block plus its own)."""
    learner: Callable[..., Learner]
    """``learner(spec, cfg, num_envs, seed)``: builds the learner for an env (a family
    whose learner needs neither may ignore them)."""
    metrics: Callable[[Any, EnvSpec], dict[str, float]]
    """``metrics(stats, spec)``: :meth:`Learner.update`'s statistics -> flat metrics."""
    episode_limit: Callable[[Any], int | None] = lambda cfg: None
    """The longest episode the family can train on (None: any); checked at build time
    against the env's ``EnvSpec.episode_limit``."""
