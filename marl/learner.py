"""COMA: Counterfactual Multi-Agent Policy Gradients (Foerster et al., AAAI 2018).

Read this file top to bottom: :meth:`Learner.update` is the whole algorithm for one
rollout fragment. Equation numbers refer to the AAAI paper.

Shape letters: T time, B envs, N agents, O observation, S state, A actions,
H actor hidden units.

Per fragment (``[T, B]`` steps from B parallel envs):

1. Unroll the decentralised actors pi^a(u^a | tau^a) over the fragment (shared
   parameters, agent id and previous action in the input) and mix in the epsilon floor
   (Sec. 5): ``pi = (1 - eps) softmax + eps / |U|``.
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
4. Counterfactual advantage (eq. 4), from the critic's Q on this fragment, detached:
   ``A^a = Q(s, u)[u^a] - sum_{u'} pi^a(u' | tau^a) Q(s, (u^-a, u'))[u']``.
5. Actor update (eq. 5's gradient): ``-mean(mask * A^a * log pi^a(u^a))``, minus an
   optional entropy bonus on the softmax.

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
(:func:`marl.returns.td_lambda_targets` with ``stays``). With a shared reward every
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
  (:class:`marl.critics.CriticBatch`); until then the IAC rows of a table with GRU
  actors (experiments/smax/ablation) compare against feed-forward independent critics,
  and say so. The centralised critics are feed-forward on the state, as in the paper.
* Optional entropy bonus and advantage standardisation (off in the paper). Both are
  config switches; the box-pushing experiments say which they use and why.

The paper's ablations are the same learner with another advantage module
(``algo.advantage``; :data:`marl.advantages.ADVANTAGES` is the one table of them: the
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

With one agent the counterfactual baseline ``sum_u pi(u) Q(s, u)`` is ``V(s)``: COMA is
then an actor-critic with a Q-critic, which is how the bandit, CartPole and Pong run.
"""


from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from marl.advantages import ADVANTAGES, AdvantageInputs, normalise
from marl.config import AlgoConfig
from marl.critics import CriticBatch, CriticNet, TDCritic, make_optimizer
from marl.envs.base import EnvSpec
from marl.errors import NonFiniteError
from marl.nets import Actor
from marl.policy import (
    ExploringPolicy,
    exploration_probs,
    floor_mix,
    masked_softmax,
    sample_categorical,
)
from marl.returns import td_lambda_targets, team_rewards
from marl.rollout import Rollout


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
                           init=cfg.actor_init)
        self.actor_opt = make_optimizer(self.actor.parameters(), cfg.optimizer, cfg.actor_lr,
                                        cfg.rmsprop_alpha, cfg.opt_eps)
        self.advantage = ADVANTAGES[cfg.advantage]
        kinds = self.advantage.trains(cfg.reinforce_baseline)
        self.critics = nn.ModuleDict({
            kind: TDCritic(
                CriticNet(kind, spec, cfg.critic_hidden, own_obs=cfg.critic_own_obs),
                lr=cfg.critic_lr, optimizer=cfg.optimizer, alpha=cfg.rmsprop_alpha,
                opt_eps=cfg.opt_eps, grad_clip=cfg.grad_clip,
                target_update_interval=cfg.target_update_interval, tau=cfg.target_tau)
            for kind in kinds
        })
        self.policy = ExploringPolicy(self.actor, cfg, spec.has_action_mask)
        self.n_updates = 0

    # ------------------------------------------------------------------ update
    def update(self, ro: Rollout) -> UpdateStats:
        """One update on a fragment, under the epsilon it was collected with (``ro.eps``);
        returns raw statistics (see :func:`update_metrics`)."""
        cfg = self.cfg
        eps = ro.eps[:, None, None, None]  # [T, 1, 1, 1] the epsilon that acted
        alive = ro.alive[:-1]  # [T, B, N] agent acted at t
        mask = alive.float()

        # 1. Actors over the fragment; exploring policy with the epsilon floor.
        logits, hs = self.actor.unroll(ro.obs[:-1], ro.prev_actions[:-1], ro.first[:-1], ro.h0)
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
        stats_critic: dict[str, dict[str, float]] = {"loss": {}, "grad_norm": {}}
        if self.critics:
            now, nxt = self._critic_batches(ro, hs, stays)
            for kind, critic in self.critics.items():
                with torch.no_grad():
                    x.next_values[kind] = critic.values(nxt, target=True)  # [T, B, N]
                    x.targets[kind] = td_lambda_targets(rewards, x.next_values[kind],
                                                        ro.terminated, ro.truncated,
                                                        cfg.gamma, cfg.td_lambda,
                                                        stays=stays)
                for i in range(cfg.critic_updates):
                    o, info = critic.update(now, x.targets[kind], alive)
                    if i == 0:
                        x.q[kind] = o  # output before this fragment's critic steps
                stats_critic["loss"][kind] = info["loss"]
                stats_critic["grad_norm"][kind] = info["grad_norm"]

        # 4. Advantage of the chosen module (eq. 4 for coma), detached: no gradient
        # reaches the critics or the baseline through the actor's loss.
        with torch.no_grad():
            adv, baseline = self._advantage(x)
            adv_used = normalise(adv, alive) if cfg.normalize_advantage else adv

        # 5. Actor: policy gradient with that advantage, plus the entropy bonus.
        pg_loss, entropy, grad_norm = self._actor_step(pi, soft, ro.actions, adv_used, mask)
        self.n_updates += 1
        first = next(iter(self.critics), None)
        return UpdateStats(
            eps=float(ro.eps[0]), mask=mask, pi=pi.detach(), adv=adv, baseline=baseline,
            pg_loss=pg_loss, entropy=entropy, actor_grad_norm=grad_norm,
            critic_loss=stats_critic["loss"], critic_grad_norm=stats_critic["grad_norm"],
            td_target=None if first is None else x.targets[first])

    def _advantage(self, x: AdvantageInputs) -> tuple[Tensor, Tensor]:
        """(advantage, baseline), both ``[T, B, N]``, of ``algo.advantage``."""
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
        if not torch.isfinite(actor_loss):
            raise NonFiniteError(f"actor loss is {actor_loss.item()}")
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        grad = nn.utils.clip_grad_norm_(self.actor.parameters(), self.cfg.grad_clip)
        if not torch.isfinite(grad):
            raise NonFiniteError(f"actor gradient norm is {grad.item()}")
        self.actor_opt.step()
        return pg_loss.item(), entropy.item(), float(grad)

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
        for name, p in self.named_parameters():
            if not torch.isfinite(p).all():
                raise NonFiniteError(f"parameter {name} has non-finite values")

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


def _masked_mean(x: Tensor, mask: Tensor) -> float:
    return float((x * mask).sum() / mask.sum().clamp_min(1.0))


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
        m["train/td_target"] = _masked_mean(s.td_target, mask)
    m.update({
        "loss/actor": s.pg_loss,
        "loss/actor_grad_norm": s.actor_grad_norm,
        "loss/entropy": s.entropy,
        "train/epsilon": s.eps,
        "train/baseline": _masked_mean(s.baseline, mask),
        "train/advantage_abs": _masked_mean(s.adv.abs(), mask),
    })
    if spec.n_actions <= 16:  # small action spaces: the policy itself
        probs = (s.pi * mask[..., None]).sum((0, 1)) / mask.sum((0, 1))[..., None]
        for i, agent in enumerate(spec.agents):
            for u in range(spec.n_actions):
                m[f"train/pi/{agent}/{u}"] = float(probs[i, u])
    for i, agent in enumerate(spec.agents):
        m[f"credit/{agent}/advantage_mean"] = _masked_mean(s.adv[..., i], mask[..., i])
    return m
