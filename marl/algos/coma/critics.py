"""Critic inputs (who may see what) and a critic trained by TD(lambda) from a target copy.

Shape letters: T time, B envs, N agents, O observation features, S state features,
A actions. Leading axes ``...`` are free (``[T, B]`` in the learner, ``[B]`` in tests).

Input builders are pure functions so the information flow of each critic can be tested
on the inputs themselves: COMA's centralised critic for agent a sees the state, a's own
observation, the *other* agents' current actions, the previous joint action and a's id,
but never a's own current action -- its |A| outputs are indexed by it instead
(paper Sec. 4, "Critic representation"). Independent critics see only agent a's own
observation, previous action and id.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from marl.algos.common import guarded_step, make_optimizer, sync_targets
from marl.core.critic_nets import CRITIC_NETS
from marl.core.nets import ObsEncoder
from marl.envs.base import EnvSpec


def _one_hot_prev(prev_actions: Tensor, n_actions: int) -> Tensor:
    """``[..., N]`` with A meaning "none" -> ``[..., N, A]`` (zeros for none)."""
    return F.one_hot(prev_actions, n_actions + 1)[..., :n_actions].float()


def _agent_ids(lead: torch.Size, n_agents: int, device: torch.device) -> Tensor:
    return torch.eye(n_agents, device=device).expand(*lead, n_agents, n_agents)


def central_q_input_dim(state_dim: int, obs_dim: int, n_agents: int, n_actions: int,
                        own_obs: bool = True) -> int:
    return state_dim + (obs_dim if own_obs else 0) + 2 * n_agents * n_actions + n_agents


def central_q_inputs(
    state: Tensor, obs: Tensor, actions: Tensor, prev_actions: Tensor, n_actions: int,
    own_obs: bool = True,
) -> Tensor:
    """COMA critic input for every agent: ``[..., N, S + O + 2 N A + N]``.

    Args:
        state: ``[..., S]`` global state.
        obs: ``[..., N, O]`` per-agent observations (flattened features).
        actions: ``[..., N]`` current joint action; row a gets it with a's slot zeroed.
        prev_actions: ``[..., N]`` previous joint action (A = none).
        own_obs: include a's own observation (the paper does).
    """
    lead, n = actions.shape[:-1], actions.shape[-1]
    joint = F.one_hot(actions, n_actions).float()  # [..., N, A]
    # others[a, b] = 1 for b != a: agent a's row carries every action but its own.
    others = 1.0 - torch.eye(n, device=actions.device)
    u_others = joint.unsqueeze(-3) * others[..., None]  # [..., N(a), N(b), A]
    u_prev = _one_hot_prev(prev_actions, n_actions).flatten(-2)  # [..., N A]
    parts = [state.unsqueeze(-2).expand(*lead, n, state.shape[-1])]
    if own_obs:
        parts.append(obs.flatten(len(lead) + 1))
    parts += [
        u_others.flatten(-2),
        u_prev.unsqueeze(-2).expand(*lead, n, u_prev.shape[-1]),
        _agent_ids(lead, n, actions.device),
    ]
    return torch.cat(parts, -1)


def central_v_inputs(state: Tensor, n_agents: int) -> Tensor:
    """Central V(s) input for every agent: ``[..., N, S + N]`` (state and agent id)."""
    lead = state.shape[:-1]
    return torch.cat(
        [state.unsqueeze(-2).expand(*lead, n_agents, state.shape[-1]),
         _agent_ids(lead, n_agents, state.device)], -1)


def local_inputs(obs: Tensor, prev_actions: Tensor, n_actions: int) -> Tensor:
    """Independent critic input: ``[..., N, O + A + N]``, only agent a's own information."""
    lead, n = prev_actions.shape[:-1], prev_actions.shape[-1]
    return torch.cat(
        [obs.flatten(len(lead) + 1), _one_hot_prev(prev_actions, n_actions),
         _agent_ids(lead, n, obs.device)], -1)


CRITIC_KINDS = ("central_q", "central_v", "local_q", "local_v")
"""central_*: state, own observation, others' actions (Q), previous joint action, id;
local_*: only the agent's own observation, previous action and id. *_q: |A| outputs
indexed by the agent's own action; *_v: one output."""


@dataclass
class CriticBatch:
    """What a critic may read at a set of time steps (leading axes ``...``, e.g. [T, B])."""

    state: Tensor  # [..., S] global state (S may be 0: pixel envs without one)
    obs: Tensor  # [..., N, *O] per-agent observations
    actions: Tensor  # [..., N] current joint action (central_q uses the others')
    prev_actions: Tensor  # [..., N] previous joint action, A = none
    # A recurrent critic's sequence (leading axes [T, B]): where an episode starts and the
    # state before step 0 ([B, N, H]; None: the TDCritic's carry). A batch of *next*
    # situations names the sequence it follows (``after``): its entry t is one step
    # from the hidden state after that sequence's step t.
    first: Tensor | None = None  # [T, B]
    h0: Tensor | None = None  # [B, N, H] the state before step 0; None: the TDCritic's carry
    after: CriticBatch | None = None  # the sequence a batch of next situations follows


class CriticNet(nn.Module):
    """A critic of one kind: its input builder, a conv encoder for pixels, and a network
    of :data:`marl.core.critic_nets.CRITIC_NETS` (``net``: an MLP, or a GRU over the
    input's history).

    With pixel observations each agent's observation is first encoded by a shared conv
    torso (:class:`marl.core.nets.ObsEncoder`, trained by the critic loss) and the builders
    see those features in place of the pixels. When the env has no global state of its
    own (``spec.state_is_concat_obs``) and observes pixels, the state is the
    concatenation of all agents' encoded observations.
    """

    def __init__(self, kind: str, spec: EnvSpec, hidden: Iterable[int], own_obs: bool = True,
                 pixel_features: int = 256, net: str = "mlp", gru_init: str = "torch"):
        super().__init__()
        if kind not in CRITIC_KINDS:
            raise ValueError(f"critic kind {kind!r} unknown: use one of {CRITIC_KINDS}")
        self.kind, self.own_obs = kind, own_obs
        self.n_agents, self.n_actions = spec.n_agents, spec.n_actions
        pixels = len(spec.obs_shape) == 3
        scale = 1.0 / 255.0 if spec.obs_dtype == "uint8" else 1.0
        self.encoder = ObsEncoder(spec.obs_shape, pixel_features, scale) if pixels else None
        obs_dim = pixel_features if pixels else int(math.prod(spec.obs_shape))
        self.state_from_obs = pixels and spec.state_is_concat_obs
        state_dim = spec.n_agents * obs_dim if self.state_from_obs else spec.state_dim
        n, a = spec.n_agents, spec.n_actions
        in_dim = {
            "central_q": central_q_input_dim(state_dim, obs_dim, n, a, own_obs),
            "central_v": state_dim + n,
            "local_q": obs_dim + a + n,
            "local_v": obs_dim + a + n,
        }[kind]
        out_dim = a if kind.endswith("_q") else 1
        # the MLP keeps the attribute name of the checkpoints written before the table
        self._body_name = "mlp" if net == "mlp" else net
        self.add_module(self._body_name, CRITIC_NETS[net](in_dim, out_dim, tuple(hidden),
                                                          gru_init))

    @property
    def body(self) -> nn.Module:
        return self._modules[self._body_name]

    @property
    def recurrent(self) -> bool:
        return self.body.recurrent

    def inputs(self, b: CriticBatch) -> Tensor:
        """The MLP's input ``[..., N, I]`` (after encoding pixels)."""
        obs, state = b.obs, b.state
        if self.encoder is not None:
            obs = torch.relu(self.encoder(obs))  # [..., N, F]
            if self.state_from_obs:
                state = obs.flatten(-2)
        if self.kind == "central_q":
            return central_q_inputs(state, obs, b.actions, b.prev_actions, self.n_actions,
                                    self.own_obs)
        if self.kind == "central_v":
            return central_v_inputs(state, self.n_agents)
        return local_inputs(obs, b.prev_actions, self.n_actions)

    def forward(self, b: CriticBatch) -> Tensor:
        """``[..., N, A]`` for Q critics, ``[..., N, 1]`` for V critics. A recurrent
        critic needs ``b.first`` and ``b.h0``, or ``b.after`` (a batch that has them)."""
        x = self.inputs(b)
        if not self.recurrent:
            return self.body(x)
        if b.after is not None:
            return self.body.step(x, self.unroll(b.after)[1])[0]
        return self.body.unroll(x, b.first, b.h0)[0]

    def unroll(self, b: CriticBatch) -> tuple[Tensor, Tensor]:
        """A recurrent critic over ``b``'s sequence: outputs and hidden states after
        each step ``[T, B, N, H]``."""
        if b.first is None or b.h0 is None:
            raise ValueError("a recurrent critic's batch needs first and h0")
        return self.body.unroll(self.inputs(b), b.first, b.h0)


class CriticStep(NamedTuple):
    """What one :meth:`TDCritic.update` did."""

    output: Tensor  # [..., N, A or 1] the critic's full output before the step, detached
    loss: float  # coef x the masked mean (PPO-clipped) squared TD(lambda) error, before the step
    grad_norm: float  # before clipping


class TDCritic(nn.Module):
    """A critic, its target copy and its optimiser.

    Targets are computed by the caller (from the target copy's :meth:`values`), so this
    class only regresses onto them and keeps the target copy in step: a hard copy every
    ``target_update_interval`` updates (the paper) or Polyak averaging with ``tau``.
    """

    def __init__(self, net: CriticNet, *, lr: float, optimizer: str, alpha: float,
                 opt_eps: float, grad_clip: float, target_update_interval: int,
                 tau: float | None):
        super().__init__()
        self.net = net
        self.is_q = net.kind.endswith("_q")
        self.target = copy.deepcopy(self.net).requires_grad_(False)
        self.opt = make_optimizer(self.net.parameters(), optimizer, lr, alpha, opt_eps)
        self.grad_clip, self.interval, self.tau = grad_clip, target_update_interval, tau
        self.n_updates = 0
        # a recurrent critic's state before this fragment / before the next, per network
        self.h_start: dict[str, Tensor] = {}
        self.h_next: dict[str, Tensor] = {}

    def begin(self, now: CriticBatch, target: bool = True) -> None:
        """A new fragment (``now``: its sequence, ``[T, B]``): a recurrent critic's carry
        moves on. This fragment starts from the state the last one ended in, and the next
        one will start from where this fragment's sequence ends under the weights of now,
        before any step on it (as if the critic had run beside the actor while it
        collected). ``target``: carry the target copy's state as well."""
        if not self.net.recurrent:
            return
        lead = now.actions.shape[1:]  # [B, N]
        nets = (("net", self.net), ("target", self.target)) if target else \
            (("net", self.net),)
        with torch.no_grad():
            for which, net in nets:
                h = self.h_next.get(which)
                if h is None or h.shape[:-1] != lead:
                    h = now.actions.new_zeros(*lead, net.body.hidden_dim, dtype=torch.float32)
                self.h_start[which] = h
                self.h_next[which] = net.unroll(replace(now, h0=h))[1][-1]

    def _carried(self, b: CriticBatch, which: str) -> CriticBatch:
        """``b`` with its sequence's initial state from this fragment's carry."""
        if not self.net.recurrent:
            return b
        if b.after is not None:
            return replace(b, after=self._carried(b.after, which))
        return b if b.h0 is not None else replace(b, h0=self.h_start[which])

    def output(self, b: CriticBatch, target: bool = False) -> Tensor:
        """The full output ``[..., N, A or 1]`` of the critic (or its target copy)."""
        which = "target" if target else "net"
        return (self.target if target else self.net)(self._carried(b, which))

    def pick(self, out: Tensor, actions: Tensor) -> Tensor:
        if not self.is_q:
            return out.squeeze(-1)
        return out.gather(-1, actions.unsqueeze(-1)).squeeze(-1)

    def values(self, b: CriticBatch, target: bool = False) -> Tensor:
        """``[..., N]``: Q of each agent's own action in ``b.actions``, or V."""
        return self.pick(self.output(b, target), b.actions)

    def update(self, b: CriticBatch, targets: Tensor, mask: Tensor, coef: float = 1.0,
               old: Tensor | None = None, clip: float | None = None
               ) -> CriticStep:
        """One gradient step on ``coef`` x the masked mean squared TD(lambda) error; with
        ``old`` (``[..., N]``, the values before this fragment's steps) and ``clip``,
        PPO's clipped error ``max((V - G)^2, (V_old + clip(V - V_old, +-clip) - G)^2)``.

        Returns the critic's full output before the step (``[..., N, A or 1]``,
        detached), the loss and the gradient norm.
        """
        out = self.output(b)
        pred = self.pick(out, b.actions)
        m = mask.to(pred.dtype)
        err = (pred - targets.detach()) ** 2
        if clip is not None and old is not None:
            clipped = old + (pred - old).clamp(-clip, clip)
            err = torch.max(err, (clipped - targets.detach()) ** 2)
        loss = coef * (err * m).sum() / m.sum().clamp_min(1.0)
        grad_norm = guarded_step(loss, self.net.parameters(), self.opt, self.grad_clip,
                                 f"critic {self.net.kind}")
        self.n_updates += 1
        sync_targets(((self.net, self.target),), self.n_updates, self.interval, self.tau)
        return CriticStep(out.detach(), loss.item(), grad_norm)

    def state_dict_full(self) -> dict:
        return {"net": self.net.state_dict(), "target": self.target.state_dict(),
                "opt": self.opt.state_dict(), "n_updates": self.n_updates,
                "h_next": {k: v.clone() for k, v in self.h_next.items()}}

    def load_state_dict_full(self, sd: dict) -> None:
        self.net.load_state_dict(sd["net"])
        self.target.load_state_dict(sd["target"])
        self.opt.load_state_dict(sd["opt"])
        self.n_updates = int(sd["n_updates"])
        dev = next(self.net.parameters()).device  # checkpoints load on the CPU
        self.h_next = {k: v.to(dev, copy=True) for k, v in sd.get("h_next", {}).items()}
