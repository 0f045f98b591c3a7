"""The exploring policy: masked softmax, epsilon floor, sampling and the epsilon schedule.

COMA's actors act under an epsilon floor on the softmax over the available actions
(paper Sec. 5, "Training"; PyMARL's ``non_local_controller``), annealed linearly over
training. Everything about that policy lives here: the maths the learner differentiates
(:func:`masked_softmax`, :func:`floor_mix`), the sampling the runner does
(:func:`sample_categorical`), the schedule (:func:`epsilon_at`) and the object the runner
acts with (:class:`ExploringPolicy`). The value-based learners (VDN, QMIX) act with the
epsilon-greedy variant on the same schedule (:func:`epsilon_greedy_probs`,
:class:`EpsilonGreedyPolicy`).

Shape letters: B envs, N agents, A actions, H actor hidden units.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def masked_softmax(logits: Tensor, mask: Tensor | None = None) -> Tensor:
    """Softmax over the allowed actions (``mask`` True), exactly 0 on the others."""
    if mask is None:
        return torch.softmax(logits, dim=-1)
    return torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)


def floor_mix(probs: Tensor, eps: float | Tensor, mask: Tensor | None = None) -> Tensor:
    """``(1 - eps) * probs + eps / |allowed|`` on allowed actions, 0 on masked ones.

    ``eps`` is a float or a tensor broadcastable to ``probs[..., :1]`` (one per step)."""
    if mask is None:
        return probs * (1.0 - eps) + eps / probs.shape[-1]
    maskf = mask.to(probs.dtype)
    n_allowed = maskf.sum(-1, keepdim=True).clamp_min(1.0)
    return (probs * (1.0 - eps) + eps * maskf / n_allowed) * maskf


def exploration_probs(logits: Tensor, eps: float | Tensor, mask: Tensor | None = None) -> Tensor:
    """COMA's exploring policy: an epsilon floor on the softmax over available actions.

    ``pi = (1 - eps) * softmax(logits over allowed actions) + eps / |allowed|`` on
    allowed actions, exactly 0 on masked ones.

    Args:
        logits: ``[..., A]``.
        eps: floor weight in [0, 1] (float, or a tensor broadcastable to ``[..., 1]``).
        mask: ``[..., A]`` bool, True = allowed; None = everything allowed.
    Returns:
        ``[..., A]`` probabilities that sum to 1 over the last axis.
    """
    return floor_mix(masked_softmax(logits, mask), eps, mask)


def sample_categorical(probs: Tensor) -> Tensor:
    """One draw per row from ``probs`` (``[..., A]``, rows sum to 1) -> ``[...]`` int64.

    Inverse-CDF sampling: count the cumulative probabilities at or below a uniform draw
    ``u in [0, total)``. Three cheap ops instead of ``torch.multinomial``'s per-row setup
    (about 3x faster at B*N = 128 rows, which matters once per env step). An action with
    probability 0 (masked) can never be drawn: it would need ``c_{i-1} <= u < c_i = c_{i-1}``.
    ``u`` is scaled by ``1 - 1e-6`` so that rounding never lets it reach the total.
    """
    cdf = probs.cumsum(-1)
    u = torch.rand(cdf.shape[:-1] + (1,), dtype=cdf.dtype, device=cdf.device)
    u = u * (cdf[..., -1:] * (1.0 - 1e-6))
    return (cdf <= u).sum(-1)


def epsilon_at(env_steps: int, eps_start: float, eps_end: float, anneal_steps: int) -> float:
    """Linear anneal from ``eps_start`` to ``eps_end`` over ``anneal_steps`` env steps."""
    if anneal_steps == 0:
        return eps_end
    frac = min(1.0, env_steps / anneal_steps)
    return eps_start + frac * (eps_end - eps_start)


class ExploringPolicy:
    """The actor as the runner sees it: batched acting under the epsilon floor.

    :meth:`anneal` sets ``eps`` from the schedule before each fragment; the runner
    records the ``eps`` it acted with on the rollout (``Rollout.eps``), and the learner
    takes log pi under exactly that one. Greedy acting (evaluation) takes the argmax of
    the masked logits.
    """

    def __init__(self, actor: Any, cfg: Any, use_mask: bool = True):
        self.actor, self.cfg, self.use_mask = actor, cfg, use_mask
        self.hidden_dim = actor.hidden_dim if actor.rnn else 0
        self.device = next(actor.parameters()).device  # the env's inputs are moved there
        self.eps = cfg.eps_start

    def epsilon(self, env_steps: int) -> float:
        """The schedule's epsilon after ``env_steps`` env steps."""
        c = self.cfg
        return epsilon_at(env_steps, c.eps_start, c.eps_end, c.eps_anneal_steps)

    def anneal(self, env_steps: int) -> float:
        """Set (and return) ``eps`` for the fragment that starts after ``env_steps``."""
        self.eps = self.epsilon(env_steps)
        return self.eps

    def probs(self, out: Tensor, eps: float | Tensor, mask: Tensor | None) -> Tensor:
        """The exploring policy ``[..., A]`` on the actor's outputs ``[..., A]``."""
        return exploration_probs(out, eps, mask)

    @torch.inference_mode()
    def act(self, obs: Tensor, prev_actions: Tensor, first: Tensor, action_mask: Tensor,
            h: Tensor, greedy: bool = False) -> tuple[Tensor, Tensor]:
        if self.device.type != "cpu":  # the env's tensors are on the CPU
            dev = self.device
            obs, prev_actions, first, action_mask, h = (obs.to(dev), prev_actions.to(dev),
                                                        first.to(dev), action_mask.to(dev),
                                                        h.to(dev))
        if self.hidden_dim:
            h = h * (~first).to(h.dtype)[:, None, None]
        out, h = self.actor(obs, prev_actions, h)
        mask = action_mask if self.use_mask else None
        if greedy:
            if mask is not None:
                out = out.masked_fill(~mask, float("-inf"))
            return out.argmax(-1), h
        return sample_categorical(self.probs(out, self.eps, mask)), h


def epsilon_greedy_probs(q: Tensor, eps: float | Tensor, mask: Tensor | None) -> Tensor:
    """``(1 - eps)`` on the greedy available action plus ``eps`` spread uniformly over the
    available ones: ``[..., A]`` utilities -> ``[..., A]`` probabilities."""
    if mask is not None:
        q = q.masked_fill(~mask, float("-inf"))
    greedy = torch.nn.functional.one_hot(q.argmax(-1), q.shape[-1]).to(torch.float32)
    return floor_mix(greedy, eps, mask)


class EpsilonGreedyPolicy(ExploringPolicy):
    """Value-based acting (VDN, QMIX): the actor outputs utilities, the policy is
    epsilon-greedy over the available actions, on the same schedule; greedy acting is the
    same argmax."""

    def probs(self, out: Tensor, eps: float | Tensor, mask: Tensor | None) -> Tensor:
        return epsilon_greedy_probs(out, eps, mask)
