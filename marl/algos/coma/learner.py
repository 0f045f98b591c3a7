"""COMA: Counterfactual Multi-Agent Policy Gradients (Foerster et al., AAAI 2018).

Read this file top to bottom: :meth:`Learner.update` is the whole algorithm for one
rollout fragment. Equation numbers refer to the AAAI paper.

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
   critic itself and it takes one step on each of the actor's PPO minibatches instead.
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
     With ``shared_torso`` the V-critic is a head on the actor's torso: one forward and
     one backward per minibatch for both losses (``+ value_coef * 0.5 (V - G^lambda)^2``,
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
  every non-zero reward with ``return_reset_on_reward`` -- pg-pong's "each point is an
  episode"), optionally minus a learned central V (``reinforce_baseline``), optionally
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

from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn

import marl.algos.coma.advantages as advantages
from marl.algos.coma.advantages import ADVANTAGES, AdvantageInputs, normalise, optimistic
from marl.algos.coma.critics import CriticBatch, CriticNet, TDCritic, guarded_step, make_optimizer
from marl.algos.coma.ppo import ppo_objective, value_error
from marl.config import AlgoConfig, ConfigError
from marl.core.nets import Actor
from marl.core.policy import (
    ExploringPolicy,
    exploration_probs,
    floor_mix,
    masked_softmax,
    sample_categorical,
)
from marl.core.returns import td_lambda_targets, team_rewards
from marl.core.rollout import Rollout
from marl.envs.base import EnvSpec
from marl.io.errors import check_finite
from marl.io.metrics import masked_mean, policy_metrics


@dataclass
class UpdateStats:
    """What one update saw and did, as tensors and floats: :func:`update_metrics` turns
    it into the ``loss/``, ``train/`` and ``credit/`` metrics."""

    eps: float  # epsilon the fragment was collected (and log pi taken) with
    mask: Tensor  # [T, B, N] float: agent acted
    pi: Tensor  # [T, B, N, A] exploring policy
    adv: Tensor  # [T, B, N] advantage before standardisation
    baseline: Tensor  # [T, B, N]
    pg_loss: float
    entropy: float
    actor_grad_norm: float
    ppo: dict[str, float] = field(default_factory=dict)  # ratio and clipping diagnostics
    critic_loss: dict[str, float] = field(default_factory=dict)
    critic_grad_norm: dict[str, float] = field(default_factory=dict)
    td_target: Tensor | None = None  # [T, B, N] of the first critic


class Learner(nn.Module):
    """Actor, critics, optimisers and the exploration schedule of one run."""

    def __init__(self, spec: EnvSpec, cfg: AlgoConfig):
        super().__init__()
        self.spec, self.cfg = spec, cfg
        n, a = spec.n_agents, spec.n_actions
        pixel_scale = 1.0 / 255.0 if spec.obs_dtype == "uint8" else 1.0
        self.actor = Actor(spec.obs_shape, n, a, cfg.actor_hidden, rnn=cfg.rnn,
                           shared=cfg.share_actor, pixel_scale=pixel_scale,
                           init=cfg.actor_init, value_head=cfg.shared_torso,
                           conv_torso=cfg.conv_torso, conv_bf16=cfg.conv_bf16)
        self.actor_opt = make_optimizer(self.actor.parameters(), cfg.optimizer, cfg.actor_lr,
                                        cfg.rmsprop_alpha, cfg.opt_eps)
        self.advantage = ADVANTAGES[cfg.advantage]
        kinds = self.advantage.trains(cfg.reinforce_baseline)
        # shared_torso: the one V-critic is the actor's value head, not a network of its own
        self.shared_kind = _shared_value_kind(spec, cfg, kinds)
        kinds = () if self.shared_kind else kinds
        self.critics = nn.ModuleDict({
            kind: TDCritic(
                CriticNet(kind, spec, cfg.critic_hidden, own_obs=cfg.critic_own_obs),
                lr=cfg.critic_lr, optimizer=cfg.optimizer, alpha=cfg.rmsprop_alpha,
                opt_eps=cfg.opt_eps, grad_clip=cfg.grad_clip,
                target_update_interval=cfg.target_update_interval, tau=cfg.target_tau)
            for kind in kinds
        })
        self.policy = ExploringPolicy(self.actor, cfg, spec.has_action_mask)
        self.joint = advantages.joint_actions(n, a) if cfg.optimistic_others else None
        self.n_updates = 0

    # ------------------------------------------------------------------ update
    def update(self, ro: Rollout) -> UpdateStats:
        """One update on a fragment, under the epsilon it was collected with (``ro.eps``);
        returns raw statistics (see :func:`update_metrics`)."""
        cfg = self.cfg
        self._anneal_lr(ro)
        ppo = cfg.actor_update == "ppo"
        eps = ro.eps[:, None, None, None]  # [T, 1, 1, 1] the epsilon that acted
        alive = ro.alive[:-1]  # [T, B, N] agent acted at t
        mask = alive.float()

        # 1. Actors over the fragment; exploring policy with the epsilon floor. For ppo
        # this is pi_old, the policy that acted (no graph: the minibatches re-run it).
        with torch.set_grad_enabled(not ppo and torch.is_grad_enabled()):
            if self.shared_kind:  # over T + 1 steps: the last value bootstraps
                logits, v_all, hs = self.actor.unroll_values(ro.obs, ro.prev_actions,
                                                             ro.first, ro.h0)
                logits, hs = logits[:-1], hs[:-1]
            else:
                logits, hs = self.actor.unroll(ro.obs[:-1], ro.prev_actions[:-1],
                                               ro.first[:-1], ro.h0)
        amask = ro.action_mask[:-1] if self.spec.has_action_mask else None  # [T, B, N, A]
        soft = masked_softmax(logits, amask)  # [T, B, N, A] the actor's own softmax
        pi = floor_mix(soft, eps, amask)  # the exploring policy that acted

        # Who is still in the episode after t: alive at t + 1, or at a truncation the
        # env's final_alive (an agent that terminated in the cut step is not). An agent
        # that leaves continues with the team's target (see "Dead agents" above).
        final_alive = alive if ro.final_alive is None else ro.final_alive
        stays = torch.where(ro.truncated[..., None], final_alive, ro.alive[1:])  # [T, B, N]
        rewards = team_rewards(ro.rewards, alive, cfg.team_reward)  # [T, B, N]
        # reinforce only: its Monte-Carlo return still ends at the agent's death.
        left = alive & ~stays
        agent_term = ro.terminated[..., None] | left  # [T, B, N]
        agent_trunc = ro.truncated[..., None].expand_as(agent_term)

        # 2-3. Critics: TD(lambda) targets from the target critic, then regression.
        x = AdvantageInputs(pi=pi, actions=ro.actions, rewards=rewards,
                            terminated=agent_term, truncated=agent_trunc, q={}, targets={},
                            next_values={}, gamma=cfg.gamma,
                            return_reset_on_reward=cfg.return_reset_on_reward)
        stats_critic = self._critic_step(ro, hs, stays, alive, x)
        if self.shared_kind:  # the actor's value head: V now, V next, TD(lambda) targets
            self._shared_value_targets(ro, v_all, hs, stays, x)

        # 4. Advantage of the chosen module (eq. 4 for coma), detached: no gradient
        # reaches the critics or the baseline through the actor's loss.
        with torch.no_grad():
            adv, baseline = self._advantage(x)
            adv_used = optimistic(adv, cfg.negative_advantage_scale)  # identity at 1.0
            adv_used = normalise(adv_used, alive) if cfg.normalize_advantage else adv_used

        # 5. Actor: policy gradient (pg) or PPO's clipped surrogate with that advantage,
        # plus the entropy bonus.
        ppo_stats: dict[str, float] = {}
        if ppo:
            pg_loss, entropy, grad_norm, ppo_stats = self._ppo_update(ro, pi, adv_used, x)
        else:
            pg_loss, entropy, grad_norm = self._actor_step(pi, soft, ro.actions, adv_used, mask)
        if self.shared_kind:  # the value head was trained with the actor
            stats_critic["loss"][self.shared_kind] = ppo_stats.pop("value_loss")
            stats_critic["grad_norm"][self.shared_kind] = grad_norm
        for k in self.critics if cfg.critic_update == "ppo" else ():
            stats_critic["loss"][k] = ppo_stats.pop(f"critic_loss/{k}")
            stats_critic["grad_norm"][k] = ppo_stats.pop(f"critic_grad/{k}")
        self.n_updates += 1
        first = next(iter(x.targets), None)
        return UpdateStats(
            eps=float(ro.eps[0]), mask=mask, pi=pi.detach(), adv=adv, baseline=baseline,
            pg_loss=pg_loss, entropy=entropy, actor_grad_norm=grad_norm, ppo=ppo_stats,
            critic_loss=stats_critic["loss"], critic_grad_norm=stats_critic["grad_norm"],
            td_target=None if first is None else x.targets[first])

    def _critic_step(self, ro: Rollout, hs: Tensor, stays: Tensor, alive: Tensor,
                     x: AdvantageInputs) -> dict[str, dict[str, float]]:
        """Steps 2-3 for every critic: TD(lambda) targets from its target copy (into
        ``x.next_values`` / ``x.targets``), then ``critic_updates`` regression steps; its
        output before them goes to ``x.q``. Returns the last step's loss and grad norm.
        With ``critic_update=ppo`` the targets bootstrap from the critic itself and its
        steps are left to the PPO minibatches."""
        cfg = self.cfg
        stats: dict[str, dict[str, float]] = {"loss": {}, "grad_norm": {}}
        if not self.critics:
            return stats
        now, nxt = self._critic_batches(ro, hs, stays)
        in_epochs = cfg.critic_update == "ppo"
        for kind, critic in self.critics.items():
            with torch.no_grad():
                if kind == "central_q" and self.joint is not None:  # Pareto-AC's max
                    x.q["central_q_best"] = advantages.best_others_q(lambda u, net=critic.net: net(
                        replace(now, actions=u)), self.joint, tuple(now.actions.shape[:-1]))
                x.next_values[kind] = critic.values(nxt, target=not in_epochs)  # [T, B, N]
                x.targets[kind] = td_lambda_targets(x.rewards, x.next_values[kind],
                                                    ro.terminated, ro.truncated,
                                                    cfg.gamma, cfg.td_lambda, stays=stays)
                if in_epochs:
                    x.q[kind] = critic.net(now)
                    continue
            for i in range(cfg.critic_updates):
                o, info = critic.update(now, x.targets[kind], alive)
                if i == 0:
                    x.q[kind] = o  # output before this fragment's critic steps
            stats["loss"][kind] = info["loss"]
            stats["grad_norm"][kind] = info["grad_norm"]
        return stats

    def _advantage(self, x: AdvantageInputs) -> tuple[Tensor, Tensor]:
        """(advantage, baseline), both ``[T, B, N]``, of ``algo.advantage``."""
        if self.joint is not None:  # the Q it reads leans on the others' best reply
            x = replace(x, q={**x.q, "central_q": advantages.optimistic_others(
                x.q["central_q"], x.q["central_q_best"], self.cfg.optimistic_others)})
        return self.advantage.fn(x)

    def _actor_step(self, pi: Tensor, soft: Tensor, actions: Tensor, adv: Tensor,
                    mask: Tensor) -> tuple[float, float, float]:
        """Eq. 5's policy gradient ``-mean(mask * A * log pi(u))`` minus the entropy bonus;
        one clipped optimiser step. Returns (pg loss, entropy, gradient norm)."""
        logp = torch.log(pi.gather(-1, actions[..., None]).squeeze(-1).clamp_min(1e-10))
        n_alive = mask.sum().clamp_min(1.0)
        pg_loss = -(adv * logp * mask).sum() / n_alive
        entropy = -(soft * torch.log(soft.clamp_min(1e-10))).sum(-1)
        entropy = (entropy * mask).sum() / n_alive
        actor_loss = pg_loss - self.cfg.entropy_coef * entropy
        grad = guarded_step(actor_loss, self.actor.parameters(), self.actor_opt,
                            self.cfg.grad_clip, "actor")
        return pg_loss.item(), entropy.item(), grad

    def _ppo_update(self, ro: Rollout, pi_old: Tensor, adv: Tensor, x: AdvantageInputs
                    ) -> tuple[float, float, float, dict[str, float]]:
        """PPO's actor update: ``epochs`` passes in ``minibatches`` random minibatches,
        one clipped optimiser step each on :func:`ppo_objective` (and, with ``shared_torso``,
        the value loss through the same torso). Samples are the T x B steps of a
        feed-forward actor, or the B env sequences of a GRU actor (replayed from
        ``ro.h0``). Returns the last epoch's mean (surrogate loss, entropy, gradient norm)
        and diagnostics: ``first_ratio_dev`` (max ``|r - 1|`` of the very first
        minibatch, 0 up to rounding), ``clip_frac``, ``approx_kl`` and ``value_loss``."""
        cfg, spec = self.cfg, self.spec
        t_len, b = ro.actions.shape[:2]
        rows = (b if self.actor.rnn else t_len * b)
        mb = rows // cfg.minibatches
        if mb * cfg.minibatches != rows:
            raise ValueError(f"algo.minibatches = {cfg.minibatches} must divide the "
                             f"fragment's {rows} samples")
        # [T, B, ...] tensors as [T, rows] (GRU: minibatches of env sequences) or
        # [1, T*B] (feed-forward: minibatches of single steps).
        def rows_of(z: Tensor) -> Tensor:
            return z if self.actor.rnn else z.reshape(1, t_len * b, *z.shape[2:])

        logp_old = torch.log(pi_old.gather(-1, ro.actions[..., None]).squeeze(-1)
                             .clamp_min(1e-10))
        data = {
            "obs": ro.obs[:-1], "prev": ro.prev_actions[:-1], "first": ro.first[:-1],
            "actions": ro.actions, "mask": ro.alive[:-1].float(), "adv": adv,
            "logp_old": logp_old, "eps": ro.eps[:, None].expand(t_len, b),
        }
        if spec.has_action_mask:
            data["amask"] = ro.action_mask[:-1]
        if self.shared_kind:
            data["ret"] = x.targets[self.shared_kind]
            data["v_old"] = x.q[self.shared_kind].squeeze(-1)
        epoch_critics = self.critics if cfg.critic_update == "ppo" else {}
        if epoch_critics:  # their inputs (_critic_batches' now) are the actor's and the state
            data["state"] = ro.state[:-1]
            data.update({f"ret/{k}": x.targets[k] for k in epoch_critics})
        data = {k: rows_of(v) for k, v in data.items()}
        first_dev = None
        for _ in range(cfg.epochs):
            sums: dict[str, float] = {}  # sums over the last epoch's minibatches
            used = 0
            perm = torch.randperm(rows)
            for i in range(cfg.minibatches):
                idx = perm[i * mb:(i + 1) * mb]
                # index_select: ~5x faster than v[:, idx] on the uint8 frames (CPU time
                # per 256-frame Pong minibatch 1.1 ms vs 5.3 ms)
                d = {k: v.index_select(1, idx) for k, v in data.items()}
                if not bool(d["mask"].any()):
                    continue  # no living sample: a step on its zero loss would still move
                    # the weights by Adam's momentum
                used += 1
                h0 = ro.h0[idx] if self.actor.rnn else ro.h0.new_zeros(mb, spec.n_agents, 0)
                out = self._ppo_step(d, h0)
                for k, critic in epoch_critics.items():
                    _, info = critic.update(CriticBatch(d["state"], d["obs"], d["actions"],
                                                        d["prev"]), d[f"ret/{k}"], d["mask"])
                    out[f"critic_loss/{k}"] = info["loss"]
                    out[f"critic_grad/{k}"] = info["grad_norm"]
                dev = out.pop("ratio_dev")
                first_dev = dev if first_dev is None else first_dev
                for k, v in out.items():
                    sums[k] = sums.get(k, 0.0) + v
        if not used:
            raise ValueError("the fragment has no step with a living agent: nothing for "
                             "PPO to learn from")
        sums = {k: v / used for k, v in sums.items()}
        if not self.shared_kind:
            del sums["value_loss"]
        return sums.pop("pg_loss"), sums.pop("entropy"), sums.pop("grad_norm"), \
            {"first_ratio_dev": first_dev, **sums}

    def _ppo_step(self, d: dict[str, Tensor], h0: Tensor) -> dict[str, float]:
        """One PPO minibatch (tensors ``[T', b, N, ...]``): forward, loss, clipped step."""
        cfg = self.cfg
        amask = d.get("amask")
        if self.shared_kind:
            logits, v, _ = self.actor.unroll_values(d["obs"], d["prev"], d["first"], h0)
        else:
            logits, _ = self.actor.unroll(d["obs"], d["prev"], d["first"], h0)
        soft = masked_softmax(logits, amask)
        pi = floor_mix(soft, d["eps"][..., None, None], amask)
        logp = torch.log(pi.gather(-1, d["actions"][..., None]).squeeze(-1).clamp_min(1e-10))
        mask = d["mask"]
        n_alive = mask.sum().clamp_min(1.0)
        surrogate, ratio = ppo_objective(logp, d["logp_old"], d["adv"], cfg.clip)
        pg_loss = -(surrogate * mask).sum() / n_alive
        entropy = -(soft * torch.log(soft.clamp_min(1e-10))).sum(-1)
        entropy = (entropy * mask).sum() / n_alive
        loss = pg_loss - cfg.entropy_coef * entropy
        value_loss = torch.zeros(())
        if self.shared_kind:
            value_loss = (value_error(v, d["v_old"], d["ret"], cfg.value_clip) * mask).sum() \
                / n_alive
            loss = loss + cfg.value_coef * value_loss
        grad = guarded_step(loss, self.actor.parameters(), self.actor_opt, cfg.grad_clip,
                            "actor")
        with torch.no_grad():
            log_r = logp - d["logp_old"]
            clipped = ((ratio - 1.0).abs() > cfg.clip).float()
            return {
                "pg_loss": pg_loss.item(), "entropy": entropy.item(), "grad_norm": grad,
                "value_loss": value_loss.item(),
                "clip_frac": float((clipped * mask).sum() / n_alive),
                # k3 estimator of KL(pi_old || pi) (Schulman's "approximating KL")
                "approx_kl": float((((ratio - 1.0) - log_r) * mask).sum() / n_alive),
                "ratio_dev": float(((ratio - 1.0).abs() * mask).max()),
            }

    @torch.no_grad()
    def _shared_value_targets(self, ro: Rollout, v_all: Tensor, hs: Tensor, stays: Tensor,
                              x: AdvantageInputs) -> None:
        """The value head's outputs (``v_all`` ``[T + 1, B, N]``) as the shared critic's
        ``q``, ``next_values`` and TD(lambda) ``targets`` in ``x``: the same targets as a
        separate critic's (the team reward, a leaving agent continuing with the team's
        target through ``stays``)."""
        kind = self.shared_kind
        x.q[kind] = v_all[:-1, ..., None]  # [T, B, N, 1]
        x.next_values[kind] = self._next_values(ro, v_all, hs)
        x.targets[kind] = td_lambda_targets(x.rewards, x.next_values[kind], ro.terminated,
                                            ro.truncated, self.cfg.gamma, self.cfg.td_lambda,
                                            stays=stays)

    def _next_values(self, ro: Rollout, v_all: Tensor, hs: Tensor) -> Tensor:
        """``[T, B, N]`` value-head values of the next situation: ``v_all[t + 1]``, or of
        the final observation where an episode was truncated (previous action u_t, the
        hidden state after t)."""
        nxt = v_all[1:].clone()
        bt, bb = ro.truncated.nonzero(as_tuple=True)
        if bt.numel():
            _, v_fin, _ = self.actor._step(ro.final_obs[bt, bb], ro.actions[bt, bb],
                                           hs[bt, bb], values=True)
            nxt[bt, bb] = v_fin
        return nxt

    def _anneal_lr(self, ro: Rollout) -> None:
        """``lr_anneal_steps``: learning rates ``lr * (1 - env_steps / lr_anneal_steps)``
        (floored at 0) before this update, env steps counted as T x B per update."""
        steps = self.cfg.lr_anneal_steps
        if not steps:
            return
        done = self.n_updates * ro.actions.shape[0] * ro.actions.shape[1]
        frac = max(0.0, 1.0 - done / steps)
        for g in self.actor_opt.param_groups:
            g["lr"] = self.cfg.actor_lr * frac
        for critic in self.critics.values():
            for g in critic.opt.param_groups:
                g["lr"] = self.cfg.critic_lr * frac

    def _critic_batches(self, ro: Rollout, hs: Tensor, stays: Tensor
                        ) -> tuple[CriticBatch, CriticBatch]:
        """The critics' inputs at t and at the next state, with the next joint action.

        The next state is the following entry of the fragment, or the final state where
        an episode was truncated. The joint action there is the one taken, except where
        the fragment or the episode stopped; there it is sampled from the current policy
        (from the actor's hidden state after t, under the epsilon of step t). Agents
        not in the episode there (``stays`` ``[T, B, N]`` False) act "0", as the runner
        records them: one that dies on the fragment's last step is alive at t but not at
        t + 1, one that terminated in a truncated step is not ``final_alive``.
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
            b_logits, _ = self.actor(next_obs[bt, bb], actions[bt, bb], hs[bt, bb])
            b_mask = None
            if self.spec.has_action_mask:
                next_mask = torch.where(trunc[..., None], ro.final_action_mask,
                                        ro.action_mask[1:])
                b_mask = next_mask[bt, bb]
            b_pi = exploration_probs(b_logits, ro.eps[bt, None, None], b_mask)
            # not in the next situation: "0" on record, as the runner writes it
            next_actions[bt, bb] = sample_categorical(b_pi).masked_fill_(~stays[bt, bb], 0)
        now = CriticBatch(ro.state[:-1], ro.obs[:-1], actions, ro.prev_actions[:-1])
        nxt = CriticBatch(next_state, next_obs, next_actions, actions)
        return now, nxt

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


def _shared_value_kind(spec: EnvSpec, cfg: AlgoConfig, kinds: tuple[str, ...]) -> str | None:
    """The critic kind the actor's value head replaces under ``algo.shared_torso`` (None
    without it). The head sees what the actor sees (own observation, previous action,
    id): that is an independent V-critic, and a central one only for a single agent
    whose state is its observation."""
    if not cfg.shared_torso:
        return None
    ok = kinds == ("local_v",) or (kinds == ("central_v",) and spec.n_agents == 1
                                   and spec.state_is_concat_obs)
    if not ok:
        raise ConfigError(
            f"algo.shared_torso = True is invalid: the actor's torso sees only an agent's "
            f"own observation, so it can stand for iac_v's critic, or central_v's with one "
            f"agent whose state is its observation (this env: {spec.n_agents} agents, "
            f"state_is_concat_obs={spec.state_is_concat_obs}, critics {list(kinds)})")
    return kinds[0]


def update_metrics(s: UpdateStats, spec: EnvSpec) -> dict[str, float]:
    """:class:`UpdateStats` -> flat ``loss/``, ``train/`` and ``credit/`` metrics."""
    mask = s.mask
    m: dict[str, float] = {}
    for kind in s.critic_loss:
        m[f"loss/critic_{kind}"] = s.critic_loss[kind]
        m[f"loss/critic_{kind}_grad_norm"] = s.critic_grad_norm[kind]
    if s.critic_loss:
        m["loss/critic"] = next(iter(s.critic_loss.values()))
    if s.td_target is not None:
        m["train/td_target"] = masked_mean(s.td_target, mask)
    m.update({
        "loss/actor": s.pg_loss,
        "loss/actor_grad_norm": s.actor_grad_norm,
        "loss/entropy": s.entropy,
        "train/epsilon": s.eps,
        "train/baseline": masked_mean(s.baseline, mask),
        "train/advantage_abs": masked_mean(s.adv.abs(), mask),
    })
    for k, v in s.ppo.items():
        m[f"loss/ppo_{k}"] = v
    m.update(policy_metrics(s.pi, mask, spec))
    for i, agent in enumerate(spec.agents):
        m[f"credit/{agent}/advantage_mean"] = masked_mean(s.adv[..., i], mask[..., i])
    return m
