"""How the critics learn (steps 2-3 of :meth:`marl.algos.coma.learner.ComaLearner.update`):
one strategy object per way, one row each of :data:`CRITIC_TRAINING`
(``algo.critic_update``).

* ``fragment`` (the paper's): TD(lambda) targets from the *target* critic, then
  ``critic_updates`` regression steps on the whole fragment, before the actor's step.
* ``ppo``: targets bootstrapped from the critic itself (no target network), one step on
  each of the actor's PPO minibatches (MAPPO's and CleanRL's way).
* ``shared_torso``: the one V-critic is a head on the actor's torso, trained with the
  actor in the same PPO backward pass (``+ shared_torso.value_coef * 0.5 (V - G^lambda)^2``,
  optionally clipped around the old value); it bootstraps from the current head.

The learner calls the same hooks whatever the row (they are listed, typed, in
:mod:`marl.algos.coma.interfaces`): each receives the learner's
:class:`~marl.algos.coma.interfaces.ComaParts` and the tensors it needs, never the
learner; an actor update that works in minibatches (``uses_minibatches``) calls the
minibatch hooks, and a row's per-sample tensors travel in its own
:class:`~marl.algos.coma.interfaces.Samples` dataclass (``Minibatch.critic``). A plugin
is a subclass of :class:`CriticTraining`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import torch
from torch import Tensor

import marl.algos.coma.advantages as advantages
from marl.algos.coma.advantages import AdvantageInputs
from marl.algos.coma.critics import CriticBatch, TDCritic
from marl.algos.coma.interfaces import (
    ActorPass,
    ActorResult,
    ComaParts,
    CriticStats,
    CriticTraining,
    Minibatch,
    Samples,
)
from marl.algos.coma.updates import ACTOR_UPDATES
from marl.algos.coma.updates.ppo import value_error
from marl.core.nets import Actor
from marl.core.policy import exploration_probs, sample_categorical
from marl.core.returns import td_lambda_targets
from marl.core.rollout import Rollout
from marl.envs.base import EnvSpec
from marl.schema import ConfigError, check, lookup

if TYPE_CHECKING:  # config imports this table
    from marl.algos.coma.config import ComaConfig

__all__ = ["CRITIC_TRAINING", "CriticTraining", "critic_batches", "next_values"]

def _minibatch_update(cfg: ComaConfig) -> bool:
    return bool(lookup(ACTOR_UPDATES, cfg.actor_update, "algo.actor_update").uses_minibatches)


class FragmentTraining(CriticTraining):
    """The paper's: targets from the target critic, ``critic_updates`` steps per fragment."""

    bootstrap_from_target = True

    def fit(self, parts: ComaParts, ro: Rollout, act: ActorPass, stays: Tensor,
            x: AdvantageInputs) -> CriticStats:
        stats = CriticStats()
        if not parts.critics:
            return stats
        now, nxt = critic_batches(parts, ro, act.hs, stays)
        alive = ro.alive[:-1]
        for kind, critic in parts.critics.items():
            critic.begin(now, target=self.bootstrap_from_target)
            with torch.no_grad():
                if kind == "central_q" and parts.joint is not None:  # Pareto-AC's max
                    x.q["central_q_best"] = advantages.best_others_q(
                        lambda u, net=critic.net: net(replace(now, actions=u)), parts.joint,
                        tuple(now.actions.shape[:-1]))
                x.next_values[kind] = critic.values(nxt, target=self.bootstrap_from_target)
                x.targets[kind] = td_lambda_targets(x.rewards, x.next_values[kind],
                                                    ro.terminated, ro.truncated,
                                                    self.cfg.gamma, self.cfg.td_lambda,
                                                    stays=stays)
                if not self.bootstrap_from_target:
                    x.q[kind] = critic.output(now)
                    continue
            self._regress(critic, kind, now, x, alive, stats)
        return stats

    def _regress(self, critic: TDCritic, kind: str, now: CriticBatch, x: AdvantageInputs,
                 alive: Tensor, stats: CriticStats) -> None:
        for i in range(self.cfg.critic_updates):
            step = critic.update(now, x.targets[kind], alive)
            if i == 0:
                x.q[kind] = step.output  # output before this fragment's critic steps
        stats.loss[kind], stats.grad_norm[kind] = step.loss, step.grad_norm


@dataclass
class MinibatchCriticOptions:
    """``algo.critic_ppo``: the value loss of ``algo.critic_update=ppo``."""

    value_coef: float = 1.0
    """Weight of the mean squared error (JaxMARL's MAPPO: VF_COEF 0.5 x its 0.5 = 0.25,
    which matters beside the global-norm clip ``algo.grad_clip``); > 0."""
    value_clip: float | None = None
    """Clip the new value to the value before this fragment's steps +- this (PPO's
    value clipping; JaxMARL: CLIP_EPS 0.2); null = off."""

    def __post_init__(self) -> None:
        check(self.value_coef > 0, "algo.critic_ppo.value_coef", self.value_coef,
              "must be > 0")
        check(self.value_clip is None or self.value_clip > 0, "algo.critic_ppo.value_clip",
              self.value_clip, "must be null or > 0")


@dataclass(frozen=True)
class CriticSamples(Samples):
    """What ``critic_update=ppo`` adds to every PPO sample, ``[T, B, ...]`` before the cut
    (by critic kind: ``ret``, ``v_old`` with value clipping, ``h0`` for GRU critics)."""

    state: Tensor  # [T, B, S] the critics' state input (the rest is the actor's)
    ret: dict[str, Tensor]  # [T, B, N] TD(lambda) targets
    v_old: dict[str, Tensor] = field(default_factory=dict)  # values before these steps
    h0: dict[str, Tensor] = field(default_factory=dict)  # [1, B, N, H] state before it


class MinibatchTraining(FragmentTraining):
    """One step per PPO minibatch on targets from the critic itself (no target network;
    ``critic_updates``, ``target_update_interval`` and ``target_tau`` have no effect)."""

    bootstrap_from_target = False
    options = MinibatchCriticOptions
    options_key = "critic_ppo"

    @classmethod
    def validate(cls, cfg: ComaConfig) -> None:
        super().validate(cfg)
        check(_minibatch_update(cfg), "algo.critic_update", cfg.critic_update,
              "ppo trains separate critics in the actor's PPO minibatches: needs an actor "
              "update with minibatches (algo.actor_update=ppo)")

    def minibatch_inputs(self, parts: ComaParts, ro: Rollout, x: AdvantageInputs
                         ) -> CriticSamples:
        # their inputs (critic_batches' now) are the actor's and the state
        critics = parts.critics
        v_old = {} if self.cfg.critic_ppo.value_clip is None else {  # before these steps
            k: c.pick(x.q[k], ro.actions) for k, c in critics.items()}
        # a GRU critic's state before the fragment, [1, B, N, H]: cut along B with the
        # env sequences
        h0 = {k: c.h_start["net"][None] for k, c in critics.items() if c.net.recurrent}
        return CriticSamples(ro.state[:-1], {k: x.targets[k] for k in critics}, v_old, h0)

    def after_minibatch(self, parts: ComaParts, mb: Minibatch[CriticSamples]
                        ) -> CriticStats:
        c, out = mb.critic, CriticStats()
        assert c is not None  # minibatch_inputs made it
        opts = self.cfg.critic_ppo
        for k, critic in parts.critics.items():
            h0 = c.h0[k][0] if k in c.h0 else None
            b = CriticBatch(c.state, mb.obs, mb.actions, mb.prev, mb.first, h0)
            step = critic.update(b, c.ret[k], mb.counted, opts.value_coef, c.v_old.get(k),
                                 opts.value_clip)
            out.loss[k], out.grad_norm[k] = step.loss, step.grad_norm
        return out

    def report(self, stats: CriticStats, result: ActorResult) -> None:
        for k in self.critic_kinds:
            stats.loss[k] = result.critics.loss[k]
            stats.grad_norm[k] = result.critics.grad_norm[k]


@dataclass
class SharedTorsoOptions:
    """``algo.shared_torso``: the value loss of ``algo.critic_update=shared_torso``."""

    value_coef: float = 0.5
    """Weight of the value loss beside the actor's loss; > 0."""
    value_clip: float | None = None
    """Clip the new value to old value +- this in the value loss (PPO's value
    clipping); null = off."""

    def __post_init__(self) -> None:
        check(self.value_coef > 0, "algo.shared_torso.value_coef", self.value_coef,
              "must be > 0")
        check(self.value_clip is None or self.value_clip > 0,
              "algo.shared_torso.value_clip", self.value_clip, "must be null or > 0")


@dataclass(frozen=True)
class ValueSamples(Samples):
    """What ``critic_update=shared_torso`` adds to every PPO sample: ``[T, B, N]``."""

    ret: Tensor  # the value head's TD(lambda) targets
    v_old: Tensor  # its values before this update's steps


class SharedTorsoTraining(CriticTraining):
    """The V-critic is a head on the actor's torso (ppo, one own-input V-critic)."""

    value_head = True
    options = SharedTorsoOptions
    options_key = "shared_torso"

    def __init__(self, spec: EnvSpec, cfg: ComaConfig, kinds: tuple[str, ...]):
        super().__init__(spec, cfg, ())
        self.kind = shared_value_kind(spec, kinds)

    @classmethod
    def validate(cls, cfg: ComaConfig) -> None:
        check(_minibatch_update(cfg), "algo.critic_update", cfg.critic_update,
              "shared_torso trains the value head in the actor's minibatches: needs "
              "algo.actor_update=ppo")
        critics = lookup(advantages.ADVANTAGES, cfg.advantage, "algo.advantage").critics
        check(critics in (("central_v",), ("local_v",)), "algo.critic_update",
              cfg.critic_update, f"shared_torso needs a single V-critic: algo.advantage="
              f"{cfg.advantage} trains {list(critics)} (central_v or iac_v train one)")

    def actor_pass(self, actor: Actor, ro: Rollout) -> tuple[Tensor, Tensor, Tensor | None]:
        # over T + 1 steps: the last value bootstraps
        logits, v_all, hs = actor.unroll_values(ro.obs, ro.prev_actions, ro.first, ro.h0)
        return logits[:-1], hs[:-1], v_all

    def unroll(self, actor: Actor, obs: Tensor, prev: Tensor, first: Tensor, h0: Tensor
               ) -> tuple[Tensor, Tensor | None]:
        logits, v, _ = actor.unroll_values(obs, prev, first, h0)
        return logits, v

    @torch.no_grad()
    def fit(self, parts: ComaParts, ro: Rollout, act: ActorPass, stays: Tensor,
            x: AdvantageInputs) -> CriticStats:
        """The value head's outputs as the shared critic's ``q``, ``next_values`` and
        TD(lambda) ``targets``: the same targets as a separate critic's (the team reward,
        a leaving agent continuing with the team's target through ``stays``)."""
        v_all = act.values
        x.q[self.kind] = v_all[:-1, ..., None]  # [T, B, N, 1]
        x.next_values[self.kind] = nxt = next_values(parts.actor, ro, v_all, act.hs)
        x.targets[self.kind] = td_lambda_targets(x.rewards, nxt, ro.terminated, ro.truncated,
                                                 self.cfg.gamma, self.cfg.td_lambda,
                                                 stays=stays)
        return CriticStats()

    def minibatch_inputs(self, parts: ComaParts, ro: Rollout, x: AdvantageInputs
                         ) -> ValueSamples:
        return ValueSamples(x.targets[self.kind], x.q[self.kind].squeeze(-1))

    def minibatch_loss(self, v: Tensor | None, mb: Minibatch[ValueSamples], weight: Tensor,
                       n: Tensor) -> tuple[Tensor, Tensor]:
        opts, c = self.cfg.shared_torso, mb.critic
        assert v is not None and c is not None  # the value head's, minibatch_inputs'
        value_loss = (value_error(v, c.v_old, c.ret, opts.value_clip) * weight).sum() / n
        return opts.value_coef * value_loss, value_loss

    def report(self, stats: CriticStats, result: ActorResult) -> None:
        assert result.value_loss is not None  # the actor update's minibatch_loss calls
        stats.loss[self.kind] = result.value_loss
        stats.grad_norm[self.kind] = result.grad_norm


def next_values(actor: Actor, ro: Rollout, v_all: Tensor, hs: Tensor) -> Tensor:
    """``[T, B, N]`` value-head values of the next situation: ``v_all[t + 1]``, or of the
    final observation where an episode was truncated (previous action u_t, the hidden
    state after t)."""
    nxt = v_all[1:].clone()
    bt, bb = ro.truncated.nonzero(as_tuple=True)
    if bt.numel():
        _, v_fin, _ = actor.step(ro.final_obs[bt, bb], ro.actions[bt, bb], hs[bt, bb],
                                 values=True)
        nxt[bt, bb] = v_fin
    return nxt


def shared_value_kind(spec: EnvSpec, kinds: tuple[str, ...]) -> str:
    """The critic kind the actor's value head replaces. The head sees what the actor
    sees (own observation, previous action, id): that is an independent V-critic, and a
    central one only for a single agent whose state is its observation."""
    ok = kinds == ("local_v",) or (kinds == ("central_v",) and spec.n_agents == 1
                                   and spec.state_is_concat_obs)
    if not ok:
        raise ConfigError(
            f"algo.critic_update = 'shared_torso' is invalid: the actor's torso sees only an "
            f"agent's own observation, so it can stand for iac_v's critic, or central_v's "
            f"with one agent whose state is its observation (this env: {spec.n_agents} "
            f"agents, state_is_concat_obs={spec.state_is_concat_obs}, critics {list(kinds)})")
    return kinds[0]


def critic_batches(parts: ComaParts, ro: Rollout, hs: Tensor, stays: Tensor
                   ) -> tuple[CriticBatch, CriticBatch]:
    """The critics' inputs at t and at the next state, with the next joint action.

    The next state is the following entry of the fragment, or the final state where an
    episode was truncated. The joint action there is the one taken, except where the
    fragment or the episode stopped; there it is sampled from the current policy (from
    the actor's hidden state after t, under the epsilon of step t). Agents not in the
    episode there (``stays`` ``[T, B, N]`` False) act "0", as the runner records them.
    """
    actions = ro.actions
    trunc = ro.truncated[..., None]  # [T, B, 1]
    next_state = torch.where(trunc, ro.final_state, ro.state[1:])
    obs_trunc = trunc.reshape(trunc.shape + (1,) * (ro.obs.dim() - 3))
    next_obs = torch.where(obs_trunc, ro.final_obs, ro.obs[1:])
    next_actions = torch.cat([actions[1:], actions[-1:]])
    boundary = ro.truncated.clone()
    boundary[-1] = True
    with torch.no_grad():
        bt, bb = boundary.nonzero(as_tuple=True)
        b_logits, _ = parts.actor(next_obs[bt, bb], actions[bt, bb], hs[bt, bb])
        b_mask = None
        if parts.spec.has_action_mask:
            next_mask = torch.where(trunc[..., None], ro.final_action_mask, ro.action_mask[1:])
            b_mask = next_mask[bt, bb]
        b_pi = exploration_probs(b_logits, ro.eps[bt, None, None], b_mask)
        # not in the next situation: "0" on record, as the runner writes it
        next_actions[bt, bb] = sample_categorical(b_pi).masked_fill_(~stays[bt, bb], 0)
    now = CriticBatch(ro.state[:-1], ro.obs[:-1], actions, ro.prev_actions[:-1],
                      first=ro.first[:-1])
    nxt = CriticBatch(next_state, next_obs, next_actions, actions, after=now)
    return now, nxt


CRITIC_TRAINING: dict[str, type[CriticTraining]] = {
    "fragment": FragmentTraining,
    "ppo": MinibatchTraining,
    "shared_torso": SharedTorsoTraining,
}
"""``algo.critic_update`` -> the strategy class the learner instantiates."""
