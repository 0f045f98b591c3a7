"""COMA: Counterfactual Multi-Agent Policy Gradients (Foerster et al., AAAI 2018).

Read this file top to bottom: :meth:`ComaLearner.update` is the whole algorithm for one
rollout fragment, the paper's five steps, each calling the row of a table that the
config chose: the advantage module (:data:`marl.algos.coma.advantages.ADVANTAGES`), the
critic-training strategy (:data:`marl.algos.coma.critic_training.CRITIC_TRAINING`) and
the actor update (:data:`marl.algos.coma.updates.ACTOR_UPDATES`). Equation numbers refer
to the AAAI paper.

Shape letters: T time, B envs, N agents, O observation, S state, A actions,
H actor hidden units.

Per fragment (``[T, B]`` steps from B parallel envs):

1. Unroll the decentralised actors pi^a(u^a | tau^a) over the fragment (shared
   parameters, agent id and previous action in the input) and mix in the epsilon floor
   (Sec. 5): ``pi = (1 - eps) softmax + eps / |U|``, with exactly the epsilon the
   fragment was collected with (``ro.eps``), so log pi is that of the acting policy.
2. Critic targets: TD(lambda) returns (eq. 3's ``y^(lambda)``) computed backwards from
   the *target* critic's ``Q(s_{t+1}, u_{t+1})`` along the taken joint actions.
   Terminal steps do not bootstrap; truncated steps and the fragment's last step
   bootstrap from the value of the state they stopped in, evaluated at a joint action
   sampled from the current policy there (the action the agents would take).
   An agent that leaves before the episode ends (a unit that dies) is not at an
   episode end: see "Dead agents" below. With ``team_reward`` (sum or mean) every
   agent's reward is first replaced by the team's (the paper's game has one reward).
3. Critic update: regress ``Q(s_t, u_t)`` onto those targets (masked MSE), one or more
   gradient steps; refresh the target critic every ``target_update_interval`` updates.
   With ``critic_update=ppo`` (and the ppo actor update) the targets bootstrap from the
   critic itself and it takes one step on each of the actor's PPO minibatches instead
   (:mod:`marl.algos.coma.critic_training`).
4. Counterfactual advantage (eq. 4), from the critic's Q on this fragment, detached:
   ``A^a = Q(s, u)[u^a] - sum_{u'} pi^a(u' | tau^a) Q(s, (u^-a, u'))[u']``.
5. Actor update (``algo.actor_update``), minus an optional entropy bonus on the softmax:

   * ``pg``, eq. 5's gradient: one step on ``-mean(mask * A^a * log pi^a(u^a))``;
   * ``ppo`` (Schulman et al., 2017, eq. 7): ``epochs`` passes over the fragment in
     ``minibatches`` random minibatches, each one step on
     ``-mean(mask * min(r A, clip(r, 1 - clip, 1 + clip) A))`` with the ratio
     ``r = pi(u) / pi_old(u)``. ``pi_old`` is the exploring policy that acted: the
     actor's parameters before this update (the runner acted with them) under the
     fragment's own epsilon (``ro.eps``), recomputed in step 1 without a graph (a GRU
     actor is replayed from ``ro.h0``, and its minibatches are whole env sequences),
     so ``r == 1`` on the first minibatch (a minibatch with no living agent is skipped,
     not stepped). IPPO = iac_v + ppo, MAPPO = central_v + ppo.
     With ``critic_update=shared_torso`` the V-critic is a head on the actor's torso:
     one forward and one backward per minibatch for both losses
     (``+ shared_torso.value_coef * 0.5 (V - G^lambda)^2``,
     optionally clipped around the old value), bootstrapping from the current value
     head (no target copy, as in the usual PPO); otherwise the critics are trained
     in steps 2-3 as for ``pg``.

Dead agents (the team's return runs past an agent's death). The paper's game is
cooperative: what an agent's last action is worth is what the *team* gets afterwards,
and PyMARL's COMA learner (as we read it) runs the TD(lambda) targets of dead agents on
to the episode's end, bootstrapping from the critic's Q of the dead agent's no-op. We
continue them with the agents that remain instead: at the step t where agent a leaves
(it acted at t and is not alive at t + 1, or, at a truncation, ``final_alive`` is
False: it terminated in that last step), a's target is the team's continuation,
``G^a_t = r_t + gamma [ vbar_{t+1} + lam (Gbar_{t+1} - vbar_{t+1}) ]``, where
``vbar_{t+1}`` and ``Gbar_{t+1}`` are the means of the target critic's values and of
the TD(lambda) targets of the agents still alive at t + 1
(:func:`marl.core.returns.td_lambda_targets` with ``stays``). With a shared reward every
living agent's Q (or V) estimates the same team return, so their mean is the team's
continuation value. Unlike PyMARL we never train the critic on a dead agent's input
(the living agents' inputs show it acting "0", as the runner records it), so nothing
recorded for a dead agent moves a loss. When the episode terminates at t nobody
bootstraps; when the last agents leave without a terminal flag (an env that never
says so) the target is ``r_t``. ``reinforce`` (not one of the paper's StarCraft
ablations) still cuts a dead agent's Monte-Carlo return at its death
(``AdvantageInputs.terminated`` includes it).

Deliberate deviations from the paper, and why:

* Fragments, not whole episodes. The paper (and PyMARL) trains on batches of complete
  episodes. We train on fixed-length fragments from B auto-resetting envs, which keeps
  every batch the same shape, needs no padding, and lets long single-agent episodes
  (Pong: thousands of steps) learn before they end. The price is bootstrapping at the
  fragment end, handled exactly as truncation.
* One batched critic step per fragment (``critic_updates`` steps if asked), not one
  critic step per time step. PyMARL's learner steps the critic once per time step,
  backwards through the episode, and the paper does not justify it (PyMARL issue #82);
  a single step on the whole fragment's targets is the same regression with a batch
  T times larger, and T times cheaper.
* The advantage uses the critic's Q from the forward pass of its own update (before
  this fragment's critic step, like PyMARL), which saves a second critic pass; one
  gradient step later the critic would give a slightly different estimate of the same Q.
* Independent critics (``iac_v``, ``iac_q``) see a's current observation, its previous
  action and its id, not its whole action-observation history tau^a. In the paper the
  IAC critics take the actor's decentralised input and share the (recurrent) actor's
  layers up to the output, so with a GRU actor they condition on tau^a. Giving them the
  history needs the actor's hidden states in the critic's input
  (:class:`marl.algos.coma.critics.CriticBatch`); until then the IAC rows of a table with GRU
  actors (experiments/smax/ablation) compare against feed-forward independent critics,
  and say so. The centralised critics are feed-forward on the state, as in the paper.
* Optional entropy bonus and advantage standardisation (off in the paper). Both are
  config switches; the box-pushing experiments say which they use and why.

The paper's ablations are the same learner with another advantage module
(``algo.advantage``; :data:`marl.algos.coma.advantages.ADVANTAGES` is the one table of them: the
critics each one trains and the function that computes it):

* ``coma``: counterfactual baseline on the centralised Q-critic (above);
* ``central_qv``: ``Q(s, u)[u^a] - V(s)`` with a centralised Q- and V-critic;
* ``central_v``: ``G^lambda_t - V(s_t)`` with a centralised V-critic;
* ``iac_v``: ``G^lambda_t - V(o^a_t)``, independent critics on a's own observation;
* ``iac_q``: ``Q(o^a, u^a) - sum_u pi^a(u) Q(o^a, u)``, independent Q-critics;
* ``reinforce``: the discounted Monte-Carlo return (reset at episode ends, and at
  every non-zero reward with ``reinforce.reset_on_reward`` -- pg-pong's "each point is an
  episode"), optionally minus a learned central V (``reinforce.baseline``), optionally
  standardised per fragment (``normalize_advantage``, Karpathy's trick). Without a
  baseline the return is cut at the fragment end (nothing to bootstrap from): use
  fragments much longer than the reward horizon.

Against relative over-generalisation (a's part of the optimal joint action looks bad while
the others still explore), two options change only the actor's advantage; both are off by
default (the paper's COMA bit for bit); gain and price: experiments/optimism/.
``negative_advantage_scale`` = eta < 1 (Zhao et al., ICML 2024, OptiMAPPO): any module's
advantage becomes ``max(A, 0) + eta * min(A, 0)`` before standardisation, so eq. 5 (now
biased) pushes worse-than-baseline actions down eta times as hard. ``optimistic_others`` =
w > 0 (after Pareto-AC, Christianos et al., TMLR 2023; coma and central_qv): eq. 4 reads
``(1 - w) Q(s, (u^-a, .)) + w max_{u^-a'} Q(s, (u^-a', .))`` from the critic before its
step, valuing a's actions as if the others gave their best reply; unlike Pareto-AC the
critic keeps on-policy targets. Why and how: :func:`marl.algos.coma.advantages.optimistic_others`.

With one agent the counterfactual baseline ``sum_u pi(u) Q(s, u)`` is ``V(s)``: COMA is
then an actor-critic with a Q-critic, which is how the bandit, CartPole and Pong run.
"""


from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

import marl.algos.coma.advantages as advantages
from marl.algos.coma.advantages import ADVANTAGES, AdvantageInputs, normalise, optimistic
from marl.algos.coma.config import ComaConfig
from marl.algos.coma.critic_training import CRITIC_TRAINING
from marl.algos.coma.critics import CriticNet, TDCritic
from marl.algos.coma.interfaces import ActorPass, ComaParts
from marl.algos.coma.stats import UpdateStats, update_metrics
from marl.algos.coma.updates import ACTOR_UPDATES
from marl.algos.common import anneal_lr, lr_fraction, make_optimizer
from marl.core.nets import Actor
from marl.core.policy import ExploringPolicy, floor_mix, masked_softmax
from marl.core.returns import team_rewards
from marl.core.rollout import TIMEOUTS, Rollout
from marl.envs.base import EnvSpec
from marl.io.errors import check_finite
from marl.schema import lookup


class ComaLearner(nn.Module):
    """Actor, critics, optimisers and the exploration schedule of one run."""

    def __init__(self, spec: EnvSpec, cfg: ComaConfig, num_envs: int | None = None,
                 seed: int | None = None):
        super().__init__()  # num_envs, seed: the family protocol's; nothing here needs them
        self.spec, self.cfg = spec, cfg
        self.device = torch.get_default_device()  # marl.build constructs under `device`
        self.advantage = lookup(ADVANTAGES, cfg.advantage, "algo.advantage")
        self.actor_update = lookup(ACTOR_UPDATES, cfg.actor_update, "algo.actor_update")
        training = lookup(CRITIC_TRAINING, cfg.critic_update, "algo.critic_update")
        # not self.training: that is nn.Module's train/eval flag
        self.critic_training = training(spec, cfg,
                                        self.advantage.trains(cfg.options(self.advantage)))
        pixel_scale = 1.0 / 255.0 if spec.obs_dtype == "uint8" else 1.0
        self.actor = Actor(spec.obs_shape, spec.n_agents, spec.n_actions, cfg.actor_hidden,
                           rnn=cfg.rnn, shared=cfg.share_actor, pixel_scale=pixel_scale,
                           agent_id="agent_id" in cfg.actor_inputs,
                           last_action="last_action" in cfg.actor_inputs,
                           init=cfg.actor_init, value_head=self.critic_training.value_head,
                           conv_torso=cfg.conv_torso, conv_bf16=cfg.conv_bf16,
                           gru_init=cfg.gru_init)
        self.actor_opt = make_optimizer(self.actor.parameters(), cfg.optimizer, cfg.actor_lr,
                                        cfg.rmsprop_alpha, cfg.opt_eps)
        self.critics = nn.ModuleDict({
            kind: TDCritic(
                CriticNet(kind, spec, cfg.critic_hidden, own_obs=cfg.critic_own_obs,
                          net=cfg.critic_net, gru_init=cfg.gru_init),
                lr=cfg.critic_lr, optimizer=cfg.optimizer, alpha=cfg.rmsprop_alpha,
                opt_eps=cfg.opt_eps, grad_clip=cfg.grad_clip,
                target_update_interval=cfg.target_update_interval, tau=cfg.target_tau)
            for kind in self.critic_training.critic_kinds
        })
        self.policy = ExploringPolicy(self.actor, cfg, spec.has_action_mask)
        self.joint = advantages.joint_actions(spec.n_agents, spec.n_actions) \
            if cfg.optimistic_others else None
        self.parts = ComaParts(spec, cfg, self.actor, self.actor_opt, self.critics,
                               self.critic_training, self.joint)
        """What the strategies get of this learner (not the learner itself)."""
        self.n_updates = 0

    # ------------------------------------------------------------------ update
    def update(self, ro: Rollout) -> UpdateStats:
        """One update on a fragment, under the epsilon it was collected with (``ro.eps``);
        returns raw statistics (see :func:`update_metrics`)."""
        ro = ro.to(self.device)
        self._anneal_lr(ro)
        ro = TIMEOUTS[self.cfg.timeouts](ro)
        act = self.actor_pass(ro)  # 1. actors over the fragment, exploring policy
        stays, x = self.advantage_inputs(ro, act)
        critic_stats = self.critic_training.fit(self.parts, ro, act, stays, x)  # 2-3. critics
        with torch.no_grad():  # 4. advantage, detached: no gradient reaches the critics
            adv, baseline = self.compute_advantage(x)
            adv_used = optimistic(adv, self.cfg.negative_advantage_scale)  # 1.0: identity
            if self.cfg.normalize_advantage:
                adv_used = normalise(adv_used, ro.alive[:-1])
        result = self.actor_update(self.parts, ro, act, adv_used, x)  # 5. actor update
        self.critic_training.report(critic_stats, result)
        self.n_updates += 1
        first = next(iter(x.targets), None)
        return UpdateStats(
            eps=float(ro.eps[0]), mask=ro.alive[:-1].float(), pi=act.pi.detach(), adv=adv,
            baseline=baseline, pg_loss=result.pg_loss, entropy=result.entropy,
            actor_grad_norm=result.grad_norm, ppo=result.extra,
            critic_loss=critic_stats.loss, critic_grad_norm=critic_stats.grad_norm,
            td_target=None if first is None else x.targets[first])

    def actor_pass(self, ro: Rollout) -> ActorPass:
        """Step 1: the actors unrolled over the fragment and the exploring policy, with
        exactly the epsilon floor that acted (``ro.eps``). An update that re-runs the
        actor itself (ppo) gets this pass without a graph: it is pi_old."""
        with torch.set_grad_enabled(self.actor_update.keeps_graph and torch.is_grad_enabled()):
            logits, hs, values = self.critic_training.actor_pass(self.actor, ro)
        amask = ro.action_mask[:-1] if self.spec.has_action_mask else None  # [T, B, N, A]
        soft = masked_softmax(logits, amask)  # [T, B, N, A] the actor's own softmax
        pi = floor_mix(soft, ro.eps[:, None, None, None], amask)
        return ActorPass(soft=soft, pi=pi, hs=hs, values=values)

    def advantage_inputs(self, ro: Rollout, act: ActorPass) -> tuple[Tensor, AdvantageInputs]:
        """Who stays in the episode after t, and the advantage modules' inputs.

        Staying: alive at t + 1, or at a truncation the env's final_alive (an agent that
        terminated in the cut step is not). An agent that leaves continues with the
        team's target (see "Dead agents" above); reinforce's Monte-Carlo return still
        ends at its death."""
        alive = ro.alive[:-1]  # [T, B, N] agent acted at t
        final_alive = alive if ro.final_alive is None else ro.final_alive
        stays = torch.where(ro.truncated[..., None], final_alive, ro.alive[1:])  # [T, B, N]
        left = alive & ~stays
        agent_term = ro.terminated[..., None] | left  # [T, B, N]
        x = AdvantageInputs(
            pi=act.pi, actions=ro.actions, rewards=team_rewards(ro.rewards, alive,
                                                                self.cfg.team_reward),
            terminated=agent_term, truncated=ro.truncated[..., None].expand_as(agent_term),
            q={}, targets={}, next_values={}, gamma=self.cfg.gamma,
            options=self.cfg.options(self.advantage))
        return stays, x

    def compute_advantage(self, x: AdvantageInputs) -> tuple[Tensor, Tensor]:
        """(advantage, baseline), both ``[T, B, N]``, of ``algo.advantage``."""
        if self.joint is not None:  # the Q it reads leans on the others' best reply
            x = replace(x, q={**x.q, "central_q": advantages.optimistic_others(
                x.q["central_q"], x.q["central_q_best"], self.cfg.optimistic_others)})
        return self.advantage.fn(x)

    def _anneal_lr(self, ro: Rollout) -> None:
        """``lr_anneal_steps``: learning rates ``lr * (1 - env_steps / lr_anneal_steps)``
        (floored at 0) before this update, env steps counted as T x B per update."""
        if not self.cfg.lr_anneal_steps:
            return
        done = self.n_updates * ro.actions.shape[0] * ro.actions.shape[1]
        frac = lr_fraction(done, self.cfg.lr_anneal_steps)
        anneal_lr(self.actor_opt, self.cfg.actor_lr, frac)
        for critic in self.critics.values():
            anneal_lr(critic.opt, self.cfg.critic_lr, frac)

    def check_finite(self) -> None:
        """Raise :class:`NonFiniteError` naming the first NaN/inf parameter."""
        check_finite(self)

    # ------------------------------------------------------------ persistence
    def state_dict_full(self) -> dict[str, Any]:
        return {
            "actor": self.actor.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critics": {k: c.state_dict_full() for k, c in self.critics.items()},
            "n_updates": self.n_updates,
        }

    def load_networks(self, sd: dict[str, Any]) -> None:
        """Networks only (actor, critics and their targets) from a full state dict:
        the start of a fine-tuning run. Raises ValueError when they do not fit."""
        if set(sd["critics"]) != set(self.critics):
            raise ValueError(f"that run trained critics {sorted(sd['critics'])}, this one "
                             f"needs {sorted(self.critics)}")
        try:
            self.actor.load_state_dict(sd["actor"])
            for k, c in self.critics.items():
                c.net.load_state_dict(sd["critics"][k]["net"])
                c.target.load_state_dict(sd["critics"][k]["target"])
        except RuntimeError as e:  # shape mismatches
            raise ValueError(f"networks do not fit this env/config: {e}") from e

    def load_state_dict_full(self, sd: dict[str, Any]) -> None:
        if set(sd["critics"]) != set(self.critics):
            raise ValueError(f"checkpoint has critics {sorted(sd['critics'])}, this run "
                             f"needs {sorted(self.critics)} (algo.advantage differs?)")
        self.actor.load_state_dict(sd["actor"])
        self.actor_opt.load_state_dict(sd["actor_opt"])
        for k, c in self.critics.items():
            c.load_state_dict_full(sd["critics"][k])
        self.n_updates = int(sd["n_updates"])


__all__ = ["ComaLearner", "Learner", "UpdateStats", "update_metrics"]

Learner = ComaLearner
"""The name this learner had before the families' table (old imports keep working)."""
