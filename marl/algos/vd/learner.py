"""Value decomposition: VDN (Sunehag et al., 2018) and QMIX (Rashid et al., ICML 2018).

The other answer to multi-agent credit assignment, beside COMA's counterfactual
baseline: every agent a learns a utility ``Q_a(tau^a, u^a)`` from its own history; a
mixer combines the chosen utilities into the team's ``Q_tot(s, u)``, and only
``Q_tot`` is regressed onto the team reward's targets. VDN's mixer is a sum; QMIX's
is a network whose weights, produced by hypernetworks of the global state, are
non-negative, so ``Q_tot`` is monotonic in every ``Q_a`` and the greedy joint action is
each agent's own greedy action (decentralised execution, eq. 4-5 of the QMIX paper).

Read :meth:`QLearner.update` top to bottom. Per fragment from the runner:

1. The fragment goes into the episode replay buffer (:mod:`marl.algos.vd.replay`), which
   assembles whole episodes across fragments.
2. Once ``batch_episodes`` episodes are stored, ``updates_per_fragment`` times: sample
   that many episodes; unroll the agent network (GRU, shared parameters, agent id and
   last action in the input: the COMA actor's torso with A utilities as outputs) and
   its target copy from each episode's start.
3. Targets (:func:`value_targets`): double Q-learning (van Hasselt et al., 2016) -- the
   online utilities pick each agent's next action among the available ones, the target
   utilities and target mixer value it -- then TD(lambda) over the episode
   (:func:`marl.core.returns.td_lambda_targets`, ``td_lambda = 0``: one-step targets).
   Terminated steps do not bootstrap; truncated ones bootstrap from the final state.
4. Loss: masked mean squared TD error of ``Q_tot`` over filled steps (padding masked);
   one clipped optimiser step on agent network and mixer together; target networks
   copied every ``target_update_interval`` gradient steps (or Polyak ``target_tau``).

Dead agents: an agent not alive at t contributes utility 0 to the mixer at t (its
recorded action is the runner's "0" and its observation is whatever the env shows), so
nothing it "does" after death reaches ``Q_tot`` or the targets.

Acting: epsilon-greedy over the available actions with epsilon annealed linearly over
env steps (:class:`marl.core.policy.EpsilonGreedyPolicy`, the shared schedule).

Metrics: :meth:`QLearner.update` returns :class:`QStats`, and :func:`q_metrics` turns
them into flat metrics (the trainer takes that function from
:meth:`QLearner.metrics`): ``loss/critic_qtot`` the TD loss of ``Q_tot``,
``loss/critic_qtot_grad_norm`` its gradient norm, ``train/td_target`` and ``train/q_tot``
the batch's mean target and ``Q_tot``, ``train/q_greedy`` the mean greedy utility
``max_u Q_a`` on the fragment, ``train/q_gap`` the taken action's utility minus the
greedy one (``<= 0``; 0 once epsilon is 0), ``train/entropy`` and ``train/pi/*`` the
epsilon-greedy policy, ``train/grad_steps``, ``train/buffer_episodes``, and per agent
``credit/<agent>/utility`` (its mean greedy utility: the share of ``Q_tot`` the mixer
is handed) and ``credit/<agent>/q_gap``.

Shape letters: T time, E episodes, B envs, N agents, O observation, S state, A actions.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from marl.algos.common import guarded_step, make_optimizer, sync_targets
from marl.algos.vd.config import VDConfig
from marl.algos.vd.mixers import MIXERS
from marl.algos.vd.replay import EpisodeBuffer, Episodes
from marl.core.nets import Actor
from marl.core.policy import EpsilonGreedyPolicy, epsilon_greedy_probs
from marl.core.returns import td_lambda_targets
from marl.core.rollout import Rollout
from marl.envs.base import EnvSpec
from marl.io.errors import check_finite
from marl.io.metrics import masked_mean, policy_metrics
from marl.schema import lookup


@dataclass
class QStats:
    """What one update saw and did; :func:`q_metrics` turns it into metrics. The
    training fields are None until the buffer holds a batch."""

    eps: float  # epsilon the fragment was collected with
    mask: Tensor  # [T, B, N] float: agent acted
    pi: Tensor  # [T, B, N, A] epsilon-greedy policy on the fragment
    greedy_q: Tensor  # [T, B, N] max over available actions of Q_a
    gap: Tensor  # [T, B, N] Q_a(taken) - max_u Q_a
    entropy: float  # mean entropy (nats) of pi over the agent-steps that acted
    grad_steps: int  # gradient steps taken since the start, this update's included
    buffer_episodes: int  # whole episodes in the replay buffer (up to its capacity)
    td_loss: float | None = None  # last step's masked mean squared TD error of Q_tot
    grad_norm: float | None = None  # last step's gradient norm, before clipping
    td_target: float | None = None  # mean over the batch's filled steps
    q_tot: float | None = None  # last step's mean Q_tot(s_t, u_t) over the filled steps


def q_metrics(s: QStats, spec: EnvSpec) -> dict[str, float]:
    """:class:`QStats` -> flat ``loss/``, ``train/`` and ``credit/`` metrics (module
    docstring)."""
    mask = s.mask
    m: dict[str, float] = {}
    if s.td_loss is not None:
        m.update({"loss/critic_qtot": s.td_loss, "loss/critic_qtot_grad_norm": s.grad_norm,
                  "train/td_target": s.td_target, "train/q_tot": s.q_tot})
    m.update({
        "train/epsilon": s.eps, "train/entropy": s.entropy,
        "train/q_greedy": masked_mean(s.greedy_q, mask), "train/q_gap": masked_mean(s.gap, mask),
        "train/grad_steps": float(s.grad_steps), "train/buffer_episodes": float(s.buffer_episodes),
    })
    m.update(policy_metrics(s.pi, mask, spec))
    for i, agent in enumerate(spec.agents):
        m[f"credit/{agent}/utility"] = masked_mean(s.greedy_q[..., i], mask[..., i])
        m[f"credit/{agent}/q_gap"] = masked_mean(s.gap[..., i], mask[..., i])
    return m


def value_targets(q_next: Tensor, q_next_target: Tensor, avail_next: Tensor,
                  alive_next: Tensor, state_next: Tensor, target_mixer: nn.Module,
                  reward: Tensor, terminated: Tensor, truncated: Tensor, gamma: float,
                  lam: float, double_q: bool = True) -> Tensor:
    """Team targets ``[T, E]`` for ``Q_tot(s_t, u_t)``.

    Args:
        q_next: ``[T, E, N, A]`` online utilities at t + 1.
        q_next_target: ``[T, E, N, A]`` target utilities at t + 1.
        avail_next: ``[T, E, N, A]`` bool, actions available at t + 1.
        alive_next: ``[T, E, N]`` bool; dead agents contribute utility 0.
        state_next: ``[T, E, S]``.
        reward: ``[T, E]`` team reward; terminated, truncated ``[T, E]`` bool (steps
            after an episode's end are padding: the recursion never reaches into them
            because the episode's last step is terminated or truncated).
        double_q: the online utilities choose the next actions (else the target ones).
    Returns:
        ``G_t = r_t + gamma (1 - term_t) [v_{t+1} + lam c_t (G_{t+1} - v_{t+1})]`` with
        ``v_{t+1} = Q_tot^target(s_{t+1}, argmax_u Q_a(tau_{t+1}, u))``.
    """
    chooser = q_next if double_q else q_next_target
    best = chooser.masked_fill(~avail_next, float("-inf")).argmax(-1, keepdim=True)
    u = q_next_target.gather(-1, best).squeeze(-1) * alive_next  # [T, E, N]
    v_next = target_mixer(u, state_next)  # [T, E]
    return td_lambda_targets(reward, v_next, terminated, truncated, gamma, lam)


def _time_first(x: Tensor) -> Tensor:
    return x.transpose(0, 1)


class QLearner(nn.Module):
    """Agent utility network, mixer, their targets, one optimiser, the replay buffer."""

    def __init__(self, spec: EnvSpec, cfg: VDConfig, num_envs: int, seed: int = 0):
        super().__init__()
        self.spec, self.cfg, vd = spec, cfg, cfg.vd
        self.device = torch.get_default_device()  # marl.build constructs under `device`
        mixer = lookup(MIXERS, vd.mixer, "algo.vd.mixer")
        if mixer.needs_state and (spec.state_is_concat_obs or spec.state_dim == 0):
            raise ValueError(
                f"algo.vd.mixer = {vd.mixer!r} conditions on the global state, and this env "
                "has none (its state is only the concatenated observations): use "
                "algo=vdn, or an env with a state()")
        pixel_scale = 1.0 / 255.0 if spec.obs_dtype == "uint8" else 1.0
        self.agent = Actor(spec.obs_shape, spec.n_agents, spec.n_actions, cfg.actor_hidden,
                           rnn=cfg.rnn, shared=cfg.share_actor, pixel_scale=pixel_scale)
        self.mixer = mixer.make(spec.n_agents, spec.state_dim, vd)
        self.target_agent = copy.deepcopy(self.agent).requires_grad_(False)
        self.target_mixer = copy.deepcopy(self.mixer).requires_grad_(False)
        self.opt = make_optimizer(self._params(), cfg.optimizer, vd.lr, cfg.rmsprop_alpha,
                                  cfg.opt_eps)
        self.buffer = EpisodeBuffer(spec, vd.buffer_episodes, vd.episode_limit, num_envs, seed)
        self.policy = EpsilonGreedyPolicy(self.agent, cfg, spec.has_action_mask)
        self.n_updates = 0  # fragments seen
        self.n_grad_steps = 0

    def _params(self) -> list[nn.Parameter]:
        return [*self.agent.parameters(), *self.mixer.parameters()]

    # ------------------------------------------------------------------ update
    def update(self, ro: Rollout) -> QStats:
        """Store the fragment; train once the buffer holds a batch. Stats: the fragment
        under the network that acted on it, and the last gradient step."""
        vd = self.cfg.vd
        ro = ro.to(self.device)
        self.buffer.add(ro)
        stats = self._fragment_stats(ro)
        if self.buffer.size >= vd.batch_episodes:
            if self.n_grad_steps == 0:  # the mixer's state scale, fixed from the first data
                stored = self.buffer.store.state[: self.buffer.size]
                self.mixer.set_state_scale(stored)
                self.target_mixer.set_state_scale(stored)
            for _ in range(vd.updates_per_fragment):
                batch, _ = self.buffer.sample(vd.batch_episodes)
                trained = self.train_step(batch)
                stats.td_loss, stats.grad_norm = trained["td_loss"], trained["grad_norm"]
                stats.td_target, stats.q_tot = trained["td_target"], trained["q_tot"]
        self.n_updates += 1
        stats.grad_steps = self.n_grad_steps
        return stats

    def q_values(self, ep: Episodes, target: bool = False) -> Tensor:
        """Utilities ``[T+1, E, N, A]`` of every situation of the episodes, unrolled from
        each episode's start (online or target agent network)."""
        obs = _time_first(ep.obs)  # [T+1, E, N, *O]
        a_none = self.spec.n_actions
        actions = _time_first(ep.actions)
        prev = torch.cat([torch.full_like(actions[:1], a_none), actions])  # [T+1, E, N]
        first = torch.zeros(obs.shape[:2], dtype=torch.bool, device=obs.device)
        first[0] = True
        net = self.target_agent if target else self.agent
        h0 = net.initial_hidden(obs.shape[1])
        q, _ = net.unroll(obs, prev, first, h0)
        return q

    def loss(self, ep: Episodes) -> tuple[Tensor, dict[str, float]]:
        """Masked mean squared TD error of ``Q_tot``, and the mean target and ``Q_tot``
        over the filled steps."""
        cfg = self.cfg
        q = self.q_values(ep)  # [T+1, E, N, A]
        alive, avail = _time_first(ep.alive).float(), _time_first(ep.avail)
        state = _time_first(ep.state)
        actions = _time_first(ep.actions)
        with torch.no_grad():
            q_target = self.q_values(ep, target=True)
            targets = value_targets(
                q[1:].detach(), q_target[1:], avail[1:], alive[1:], state[1:],
                self.target_mixer, _time_first(ep.reward), _time_first(ep.terminated),
                _time_first(ep.truncated), cfg.gamma, cfg.td_lambda, cfg.vd.double_q)
        chosen = q[:-1].gather(-1, actions[..., None]).squeeze(-1) * alive[:-1]  # [T, E, N]
        q_tot = self.mixer(chosen, state[:-1])  # [T, E]
        filled = _time_first(ep.filled).float()
        loss = ((q_tot - targets) ** 2 * filled).sum() / filled.sum().clamp_min(1.0)
        return loss, {"td_target": masked_mean(targets, filled),
                      "q_tot": masked_mean(q_tot.detach(), filled)}

    def train_step(self, ep: Episodes) -> dict[str, float]:
        """One gradient step on a batch of episodes; returns the TD loss, its gradient
        norm, the mean target and ``Q_tot``."""
        loss, diag = self.loss(ep)
        grad = guarded_step(loss, self._params(), self.opt, self.cfg.grad_clip,
                            "TD (Q_tot)")
        self.n_grad_steps += 1
        self._update_targets()
        return {"td_loss": loss.item(), "grad_norm": grad, **diag}

    def _update_targets(self) -> None:
        sync_targets(((self.agent, self.target_agent), (self.mixer, self.target_mixer)),
                     self.n_grad_steps, self.cfg.target_update_interval, self.cfg.target_tau)

    @torch.no_grad()
    def _fragment_stats(self, ro: Rollout) -> QStats:
        """Diagnostics on the fragment just collected (training fields still None)."""
        q, _ = self.agent.unroll(ro.obs[:-1], ro.prev_actions[:-1], ro.first[:-1], ro.h0)
        amask = ro.action_mask[:-1] if self.spec.has_action_mask else None
        pi = epsilon_greedy_probs(q, ro.eps[:, None, None, None], amask)  # [T, B, N, A]
        greedy_q = (q if amask is None else q.masked_fill(~amask, float("-inf"))).amax(-1)
        taken = q.gather(-1, ro.actions[..., None]).squeeze(-1)
        mask = ro.alive[:-1].float()
        entropy = -(pi * torch.log(pi.clamp_min(1e-10))).sum(-1)
        return QStats(
            eps=float(ro.eps[0]), mask=mask, pi=pi, greedy_q=greedy_q * mask,
            gap=(taken - greedy_q) * mask, entropy=masked_mean(entropy, mask),
            grad_steps=self.n_grad_steps, buffer_episodes=self.buffer.size)

    def check_finite(self) -> None:
        """Raise :class:`NonFiniteError` naming the first NaN/inf parameter."""
        check_finite(self)

    # ------------------------------------------------------------ persistence
    def state_dict_full(self) -> dict[str, Any]:
        """Networks, targets, optimiser, counters and the whole replay buffer."""
        return {
            "nets": self._nets_state(),
            "opt": self.opt.state_dict(),
            "buffer": self.buffer.state_dict(),
            "n_updates": self.n_updates, "n_grad_steps": self.n_grad_steps,
        }

    def _nets_state(self) -> dict[str, Any]:
        return {"agent": self.agent.state_dict(), "mixer": self.mixer.state_dict(),
                "target_agent": self.target_agent.state_dict(),
                "target_mixer": self.target_mixer.state_dict()}

    def load_networks(self, sd: dict[str, Any]) -> None:
        """Networks and targets only (fine-tuning). ValueError when they do not fit."""
        if "nets" not in sd:
            raise ValueError("that checkpoint is not from a value-decomposition run")
        try:
            for k, v in sd["nets"].items():
                getattr(self, k).load_state_dict(v)
        except RuntimeError as e:
            raise ValueError(f"networks do not fit this env/config: {e}") from e

    def load_state_dict_full(self, sd: dict[str, Any]) -> None:
        self.load_networks(sd)
        self.opt.load_state_dict(sd["opt"])
        self.buffer.load_state_dict(sd["buffer"])
        self.n_updates, self.n_grad_steps = int(sd["n_updates"]), int(sd["n_grad_steps"])
