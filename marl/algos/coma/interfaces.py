"""What passes between the COMA learner and its strategies, typed: the learner hands a
strategy :class:`ComaParts` (never itself), a PPO minibatch is a :class:`Minibatch`
record, and what the critics measured is :class:`CriticStats`.

A critic-training row (``algo.critic_update``) subclasses :class:`CriticTraining`; its
hooks, in the order :meth:`marl.algos.coma.learner.ComaLearner.update` calls them:

* ``actor_pass(actor, ro)``: step 1's forward over the fragment;
* ``fit(parts, ro, act, stays, x) -> CriticStats``: steps 2-3, fill ``x.q``,
  ``x.next_values`` and ``x.targets`` (by critic kind) and train;
* an actor update with minibatches (``uses_minibatches``) then calls, per fragment,
  ``minibatch_inputs(parts, ro, x) -> Samples | None`` (the row's own :class:`Samples`
  dataclass, cut with the actor's samples into ``Minibatch.critic``), and per minibatch
  ``unroll(actor, obs, prev, first, h0)``, ``minibatch_loss(v, mb, weight, n)`` (a loss
  added to the actor's, through the same backward pass) and ``after_minibatch(parts,
  mb) -> CriticStats`` (separate critics' steps on the same minibatch);
* ``report(stats, result)``: move what the actor update measured of the critics
  (``ActorResult.critics``, ``ActorResult.value_loss``) into ``stats``.

An actor update (``algo.actor_update``) is called as ``update(parts, ro, act, adv, x) ->
ActorResult``; it steps the actor with ``parts.step_actor(loss)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import torch
from torch import Tensor

from marl.algos.coma.advantages import AdvantageInputs
from marl.algos.coma.critics import TDCritic
from marl.algos.common import guarded_step
from marl.core.nets import Actor
from marl.core.rollout import Rollout
from marl.envs.base import EnvSpec

if TYPE_CHECKING:  # config imports the tables, whose rows import this module
    from marl.algos.coma.config import ComaConfig


@dataclass
class ActorPass:
    """Step 1 of the update: the actors unrolled over the fragment (``[T, B, N, ...]``)."""

    soft: Tensor  # [T, B, N, A] the actor's own softmax (action mask applied)
    pi: Tensor  # [T, B, N, A] the exploring policy that acted (epsilon floor mixed in)
    hs: Tensor  # [T, B, N, H] hidden state after each step (H = 0 feed-forward)
    values: Tensor | None = None  # [T + 1, B, N] a value head's outputs, if the torso has one


@dataclass
class CriticStats:
    """The last critic steps' loss and gradient norm, by critic kind."""

    loss: dict[str, float] = field(default_factory=dict)  # regression loss, by kind
    grad_norm: dict[str, float] = field(default_factory=dict)  # before clipping, by kind

    def add(self, other: CriticStats) -> None:
        """Sum ``other`` into this one, kind by kind (a running sum over minibatches)."""
        for mine, theirs in ((self.loss, other.loss), (self.grad_norm, other.grad_norm)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0.0) + v

    def mean(self, n: int) -> CriticStats:
        return CriticStats({k: v / n for k, v in self.loss.items()},
                           {k: v / n for k, v in self.grad_norm.items()})


@dataclass
class ActorResult:
    """What step 5 did: the surrogate / policy-gradient loss, the entropy, the gradient
    norm, extra diagnostics (``extra``: ppo's ratio and clipping, ``loss/ppo_*``), and what
    the minibatch hooks measured: separate critics' steps (``critics``, means over the
    minibatches) and a value head's loss (``value_loss``)."""

    # the policy loss without the entropy bonus: pg -mean(A log pi) over living agent-steps,
    # ppo -mean(clipped surrogate), the mean of the last epoch's minibatches
    pg_loss: float
    entropy: float  # mean entropy (nats) of the actor's softmax (ppo: as pg_loss)
    grad_norm: float  # the actor's gradient norm before clipping (ppo: as pg_loss)
    extra: dict[str, float] = field(default_factory=dict)  # -> loss/ppo_<name>
    critics: CriticStats = field(default_factory=CriticStats)  # after_minibatch's means
    value_loss: float | None = None  # minibatch_loss's raw value loss (its mean), or None


@dataclass(frozen=True)
class ComaParts:
    """The parts of the learner a strategy may use."""

    spec: EnvSpec  # the env's agents, shapes and action mask
    cfg: ComaConfig  # the run's algo config (algo.*)
    actor: Actor  # the decentralised policy network (parameters shared: algo.share_actor)
    actor_opt: torch.optim.Optimizer  # the actor's optimiser, stepped by step_actor
    critics: Mapping[str, TDCritic]  # the separately trained critics, by kind
    critic_training: CriticTraining  # whose minibatch hooks an actor update calls
    joint: Tensor | None = None  # every joint action (optimistic_others), or None

    def step_actor(self, loss: Tensor) -> float:
        """One optimiser step of the actor on ``loss``, gradients clipped to
        ``algo.grad_clip``; returns the gradient norm."""
        return guarded_step(loss, self.actor.parameters(), self.actor_opt, self.cfg.grad_clip,
                            "actor")


def _apply(fn: Callable[[Tensor], Tensor], v: Any) -> Any:
    if isinstance(v, Tensor):
        return fn(v)
    if isinstance(v, Samples):
        return v.map(fn)
    if isinstance(v, dict):
        return {k: fn(t) for k, t in v.items()}
    return v  # None


@dataclass(frozen=True)
class Samples:
    """Per-sample tensors, the samples along axis 1 (``[T', rows, ...]``). A field is a
    tensor, a dict of tensors by critic kind, another ``Samples``, or None."""

    def map(self, fn: Callable[[Tensor], Tensor]) -> Any:
        """The same record with ``fn`` applied to every tensor."""
        return type(self)(**{f.name: _apply(fn, getattr(self, f.name)) for f in fields(self)})

    def take(self, idx: Tensor) -> Any:
        """The samples ``idx`` (``index_select``: ~5x faster than ``v[:, idx]`` on the
        uint8 frames)."""
        return self.map(lambda v: v.index_select(1, idx))


C = TypeVar("C", bound=Samples)


@dataclass(frozen=True)
class Minibatch(Samples, Generic[C]):
    """PPO's samples (``[T', rows, N, ...]``: GRU env sequences, or ``T' = 1`` steps)."""

    obs: Tensor  # [T', rows, N, *O]
    prev: Tensor  # [T', rows, N] previous actions
    first: Tensor  # [T', rows] episode starts
    actions: Tensor  # [T', rows, N]
    mask: Tensor  # [T', rows, N] float: the agent acted
    counted: Tensor  # [T', rows, N] float: counted in the means (mask, or every agent-step)
    adv: Tensor  # [T', rows, N]
    logp_old: Tensor  # [T', rows, N] log pi_old of the taken action
    eps: Tensor  # [T', rows] the epsilon that acted
    amask: Tensor | None  # [T', rows, N, A] legal actions, or None
    critic: C | None  # what the critic-training row added (minibatch_inputs), or None


class CriticTraining:
    """The hooks, with what a strategy without that phase does (nothing)."""

    value_head = False
    """True: the actor carries a value head (its torso is the critic's)."""

    def __init__(self, spec: EnvSpec, cfg: ComaConfig, kinds: tuple[str, ...]):
        self.spec, self.cfg = spec, cfg
        self.critic_kinds = kinds
        """Critic kinds trained as separate networks (:class:`TDCritic` each)."""

    @classmethod
    def validate(cls, cfg: ComaConfig) -> None:
        """Config checks of this row against the rest (one-line ConfigError)."""

    def actor_pass(self, actor: Actor, ro: Rollout) -> tuple[Tensor, Tensor, Tensor | None]:
        """Step 1's forward over the fragment: (logits, hidden states, values or None)."""
        logits, hs = actor.unroll(ro.obs[:-1], ro.prev_actions[:-1], ro.first[:-1], ro.h0)
        return logits, hs, None

    def unroll(self, actor: Actor, obs: Tensor, prev: Tensor, first: Tensor, h0: Tensor
               ) -> tuple[Tensor, Tensor | None]:
        """A minibatch's forward: (logits, values or None)."""
        return actor.unroll(obs, prev, first, h0)[0], None

    def fit(self, parts: ComaParts, ro: Rollout, act: ActorPass, stays: Tensor,
            x: AdvantageInputs) -> CriticStats:
        """Steps 2-3: fill ``x.q``, ``x.next_values`` and ``x.targets``; train."""
        return CriticStats()

    def minibatch_inputs(self, parts: ComaParts, ro: Rollout, x: AdvantageInputs
                         ) -> Samples | None:
        """This row's per-sample tensors (``[T, B, ...]``), cut with the actor's."""
        return None

    def minibatch_loss(self, v: Tensor | None, mb: Minibatch, weight: Tensor, n: Tensor
                       ) -> tuple[Tensor, Tensor] | None:
        """(loss added to the actor's, raw value loss), means over ``weight`` (whose sum
        is ``n``); or None."""
        return None

    def after_minibatch(self, parts: ComaParts, mb: Minibatch) -> CriticStats:
        """Steps of separate critics on the minibatch the actor just stepped on."""
        return CriticStats()

    def report(self, stats: CriticStats, result: ActorResult) -> None:
        """Move what the actor update measured of the critics into ``stats``."""
