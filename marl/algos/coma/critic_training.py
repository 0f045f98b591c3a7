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

The learner calls the same hooks whatever the row; an actor update that works in
minibatches (``uses_minibatches``) calls the minibatch hooks. A plugin is a class with
these methods (subclass :class:`CriticTraining`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

import marl.algos.coma.advantages as advantages
from marl.algos.coma.critics import CriticBatch
from marl.algos.coma.updates import ACTOR_UPDATES
from marl.algos.coma.updates.base import ActorPass, ActorResult
from marl.algos.coma.updates.ppo import value_error
from marl.core.policy import exploration_probs, sample_categorical
from marl.core.returns import td_lambda_targets
from marl.core.rollout import Rollout
from marl.envs.base import EnvSpec
from marl.schema import ConfigError, check, lookup

Stats = dict[str, dict[str, float]]
"""``{"loss": {kind: float}, "grad_norm": {kind: float}}`` of the last critic steps."""


def _minibatch_update(cfg: Any) -> bool:
    return bool(lookup(ACTOR_UPDATES, cfg.actor_update, "algo.actor_update").uses_minibatches)


class CriticTraining:
    """The hooks, with what a strategy without that phase does (nothing)."""

    value_head = False
    """True: the actor carries a value head (its torso is the critic's)."""

    def __init__(self, spec: EnvSpec, cfg: Any, kinds: tuple[str, ...]):
        self.spec, self.cfg = spec, cfg
        self.critic_kinds = kinds
        """Critic kinds trained as separate networks (:class:`TDCritic` each)."""

    @classmethod
    def validate(cls, cfg: Any) -> None:
        """Config checks of this row against the rest (one-line ConfigError)."""

    def actor_pass(self, actor: Any, ro: Rollout) -> tuple[Tensor, Tensor, Tensor | None]:
        """Step 1's forward over the fragment: (logits, hidden states, values or None)."""
        logits, hs = actor.unroll(ro.obs[:-1], ro.prev_actions[:-1], ro.first[:-1], ro.h0)
        return logits, hs, None

    def unroll(self, actor: Any, obs: Tensor, prev: Tensor, first: Tensor, h0: Tensor
               ) -> tuple[Tensor, Tensor | None]:
        """A minibatch's forward: (logits, values or None)."""
        return actor.unroll(obs, prev, first, h0)[0], None

    def fit(self, learner: Any, ro: Rollout, act: ActorPass, stays: Tensor, x: Any) -> Stats:
        """Steps 2-3: fill ``x.q``, ``x.next_values`` and ``x.targets``; train."""
        return {"loss": {}, "grad_norm": {}}

    def minibatch_inputs(self, learner: Any, ro: Rollout, x: Any) -> dict[str, Tensor]:
        return {}

    def minibatch_loss(self, learner: Any, v: Tensor | None, d: dict[str, Tensor],
                       mask: Tensor, n_alive: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """(weighted loss added to the actor's, raw value loss), or (None, None)."""
        return None, None

    def after_minibatch(self, learner: Any, d: dict[str, Tensor]) -> dict[str, float]:
        return {}

    def report(self, stats: Stats, result: ActorResult) -> None:
        """Move what the actor update measured of the critics into ``stats``."""


class FragmentTraining(CriticTraining):
    """The paper's: targets from the target critic, ``critic_updates`` steps per fragment."""

    bootstrap_from_target = True

    def fit(self, learner: Any, ro: Rollout, act: ActorPass, stays: Tensor, x: Any) -> Stats:
        stats: Stats = {"loss": {}, "grad_norm": {}}
        if not learner.critics:
            return stats
        now, nxt = critic_batches(learner, ro, act.hs, stays)
        alive = ro.alive[:-1]
        for kind, critic in learner.critics.items():
            critic.begin(now, target=self.bootstrap_from_target)
            with torch.no_grad():
                if kind == "central_q" and learner.joint is not None:  # Pareto-AC's max
                    x.q["central_q_best"] = advantages.best_others_q(
                        lambda u, net=critic.net: net(replace(now, actions=u)), learner.joint,
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

    def _regress(self, critic: Any, kind: str, now: CriticBatch, x: Any, alive: Tensor,
                 stats: Stats) -> None:
        for i in range(self.cfg.critic_updates):
            o, info = critic.update(now, x.targets[kind], alive)
            if i == 0:
                x.q[kind] = o  # output before this fragment's critic steps
        stats["loss"][kind] = info["loss"]
        stats["grad_norm"][kind] = info["grad_norm"]


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


class MinibatchTraining(FragmentTraining):
    """One step per PPO minibatch on targets from the critic itself (no target network;
    ``critic_updates``, ``target_update_interval`` and ``target_tau`` have no effect)."""

    bootstrap_from_target = False
    options = MinibatchCriticOptions
    options_key = "critic_ppo"

    @classmethod
    def validate(cls, cfg: Any) -> None:
        super().validate(cfg)
        check(_minibatch_update(cfg), "algo.critic_update", cfg.critic_update,
              "ppo trains separate critics in the actor's PPO minibatches: needs an actor "
              "update with minibatches (algo.actor_update=ppo)")

    def minibatch_inputs(self, learner: Any, ro: Rollout, x: Any) -> dict[str, Tensor]:
        # their inputs (critic_batches' now) are the actor's and the state
        out = {"state": ro.state[:-1], **{f"ret/{k}": x.targets[k] for k in learner.critics}}
        if self.cfg.critic_ppo.value_clip is not None:  # the values before these steps
            out.update({f"v_old/{k}": c.pick(x.q[k], ro.actions)
                        for k, c in learner.critics.items()})
        for k, c in learner.critics.items():  # a GRU critic's state before the fragment,
            if c.net.recurrent:  # [1, B, N, H]: cut along B with the env sequences
                out[f"h0/{k}"] = c.h_start["net"][None]
        return out

    def after_minibatch(self, learner: Any, d: dict[str, Tensor]) -> dict[str, float]:
        out = {}
        opts = self.cfg.critic_ppo
        for k, critic in learner.critics.items():
            h0 = d[f"h0/{k}"][0] if f"h0/{k}" in d else None
            b = CriticBatch(d["state"], d["obs"], d["actions"], d["prev"], d["first"], h0)
            _, info = critic.update(b, d[f"ret/{k}"], d.get("counted", d["mask"]),
                                    opts.value_coef, d.get(f"v_old/{k}"), opts.value_clip)
            out[f"critic_loss/{k}"] = info["loss"]
            out[f"critic_grad/{k}"] = info["grad_norm"]
        return out

    def report(self, stats: Stats, result: ActorResult) -> None:
        for k in self.critic_kinds:
            stats["loss"][k] = result.extra.pop(f"critic_loss/{k}")
            stats["grad_norm"][k] = result.extra.pop(f"critic_grad/{k}")


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


class SharedTorsoTraining(CriticTraining):
    """The V-critic is a head on the actor's torso (ppo, one own-input V-critic)."""

    value_head = True
    options = SharedTorsoOptions
    options_key = "shared_torso"

    def __init__(self, spec: EnvSpec, cfg: Any, kinds: tuple[str, ...]):
        super().__init__(spec, cfg, ())
        self.kind = shared_value_kind(spec, kinds)

    @classmethod
    def validate(cls, cfg: Any) -> None:
        check(_minibatch_update(cfg), "algo.critic_update", cfg.critic_update,
              "shared_torso trains the value head in the actor's minibatches: needs "
              "algo.actor_update=ppo")
        critics = lookup(advantages.ADVANTAGES, cfg.advantage, "algo.advantage").critics
        check(critics in (("central_v",), ("local_v",)), "algo.critic_update",
              cfg.critic_update, f"shared_torso needs a single V-critic: algo.advantage="
              f"{cfg.advantage} trains {list(critics)} (central_v or iac_v train one)")

    def actor_pass(self, actor: Any, ro: Rollout) -> tuple[Tensor, Tensor, Tensor | None]:
        # over T + 1 steps: the last value bootstraps
        logits, v_all, hs = actor.unroll_values(ro.obs, ro.prev_actions, ro.first, ro.h0)
        return logits[:-1], hs[:-1], v_all

    def unroll(self, actor: Any, obs: Tensor, prev: Tensor, first: Tensor, h0: Tensor
               ) -> tuple[Tensor, Tensor | None]:
        logits, v, _ = actor.unroll_values(obs, prev, first, h0)
        return logits, v

    @torch.no_grad()
    def fit(self, learner: Any, ro: Rollout, act: ActorPass, stays: Tensor, x: Any) -> Stats:
        """The value head's outputs as the shared critic's ``q``, ``next_values`` and
        TD(lambda) ``targets``: the same targets as a separate critic's (the team reward,
        a leaving agent continuing with the team's target through ``stays``)."""
        v_all = act.values
        x.q[self.kind] = v_all[:-1, ..., None]  # [T, B, N, 1]
        x.next_values[self.kind] = nxt = next_values(learner.actor, ro, v_all, act.hs)
        x.targets[self.kind] = td_lambda_targets(x.rewards, nxt, ro.terminated, ro.truncated,
                                                 self.cfg.gamma, self.cfg.td_lambda,
                                                 stays=stays)
        return {"loss": {}, "grad_norm": {}}

    def minibatch_inputs(self, learner: Any, ro: Rollout, x: Any) -> dict[str, Tensor]:
        return {"ret": x.targets[self.kind], "v_old": x.q[self.kind].squeeze(-1)}

    def minibatch_loss(self, learner: Any, v: Tensor | None, d: dict[str, Tensor],
                       mask: Tensor, n_alive: Tensor) -> tuple[Tensor | None, Tensor | None]:
        opts = self.cfg.shared_torso
        value_loss = (value_error(v, d["v_old"], d["ret"], opts.value_clip) * mask).sum() \
            / n_alive
        return opts.value_coef * value_loss, value_loss

    def report(self, stats: Stats, result: ActorResult) -> None:
        stats["loss"][self.kind] = result.extra.pop("value_loss")
        stats["grad_norm"][self.kind] = result.grad_norm


def next_values(actor: Any, ro: Rollout, v_all: Tensor, hs: Tensor) -> Tensor:
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


def critic_batches(learner: Any, ro: Rollout, hs: Tensor, stays: Tensor
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
        b_logits, _ = learner.actor(next_obs[bt, bb], actions[bt, bb], hs[bt, bb])
        b_mask = None
        if learner.spec.has_action_mask:
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
