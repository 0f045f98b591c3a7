"""Advantage maths as pure tensor functions.

Shape letters: T time, B envs, N agents, A actions. Leading axes are free: every
function works on ``[..., A]`` / ``[...]`` so it can be tested on a single state.

The COMA paper (Foerster et al., AAAI 2018) compares its counterfactual advantage with
ablations that use a different critic but the same actor update; these functions are
those advantages. Which critic they need is decided in :mod:`marl.learner`.
"""

from __future__ import annotations

import torch
from torch import Tensor


def masked_softmax(logits: Tensor, mask: Tensor | None = None) -> Tensor:
    """Softmax over the allowed actions (``mask`` True), exactly 0 on the others."""
    if mask is None:
        return torch.softmax(logits, dim=-1)
    return torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)


def floor_mix(probs: Tensor, eps: float | Tensor, mask: Tensor | None = None) -> Tensor:
    """``(1 - eps) * probs + eps / |allowed|`` on allowed actions, 0 on masked ones."""
    if mask is None:
        return probs * (1.0 - eps) + eps / probs.shape[-1]
    maskf = mask.to(probs.dtype)
    n_allowed = maskf.sum(-1, keepdim=True).clamp_min(1.0)
    return (probs * (1.0 - eps) + eps * maskf / n_allowed) * maskf


def exploration_probs(logits: Tensor, eps: float | Tensor, mask: Tensor | None = None) -> Tensor:
    """COMA's exploring policy: an epsilon floor on the softmax over available actions.

    ``pi = (1 - eps) * softmax(logits over allowed actions) + eps / |allowed|`` on
    allowed actions, exactly 0 on masked ones (paper Sec. 5, "Training";
    PyMARL's ``non_local_controller``).

    Args:
        logits: ``[..., A]``.
        eps: floor weight in [0, 1].
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


def counterfactual_advantage(q: Tensor, pi: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
    """COMA's counterfactual advantage (paper eq. 4).

    ``A^a(s, u) = Q(s, u) - sum_{u'^a} pi^a(u'^a | tau^a) Q(s, (u^{-a}, u'^a))``.

    The centralised critic outputs, for agent a, ``Q(s, (u^{-a}, .))`` for every
    replacement of a's own action with the others' actions held fixed, so the
    baseline is one dot product per agent.

    Args:
        q: ``[..., A]`` critic output Q(s, (u^-a, u')) for every own action u'.
        pi: ``[..., A]`` agent a's policy (zero on masked actions, so they never count).
        actions: ``[...]`` int64, a's taken action.
    Returns:
        (advantage ``[...]``, baseline ``[...]``).
    """
    if q.shape != pi.shape or q.shape[:-1] != actions.shape:
        raise ValueError(
            f"q {tuple(q.shape)} and pi {tuple(pi.shape)} must be [..., A] and actions "
            f"{tuple(actions.shape)} their leading shape"
        )
    q_taken = q.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    # Masked actions have pi == 0; where() keeps a garbage or infinite Q there out of the sum.
    baseline = torch.where(pi > 0, pi * q, torch.zeros_like(q)).sum(-1)
    return q_taken - baseline, baseline


def q_minus_v(q: Tensor, v: Tensor, actions: Tensor) -> Tensor:
    """``Q(s, u)[u^a] - V(s)``: the central-QV ablation's advantage. q ``[..., A]``, v ``[...]``."""
    return q.gather(-1, actions.unsqueeze(-1)).squeeze(-1) - v


def return_minus_v(returns: Tensor, v: Tensor) -> Tensor:
    """``G^lambda_t - V(s_t)``: the central-V / IAC-V advantage (a TD(lambda) error sum)."""
    return returns - v


def normalise(x: Tensor, mask: Tensor | None = None, eps: float = 1e-8) -> Tensor:
    """Standardise ``x`` over the entries where ``mask`` is True (Karpathy's trick)."""
    if mask is None:
        return (x - x.mean()) / (x.std(unbiased=False) + eps)
    m = mask.to(x.dtype)
    n = m.sum().clamp_min(1.0)
    mean = (x * m).sum() / n
    var = (((x - mean) * m) ** 2).sum() / n
    return (x - mean) / (var.sqrt() + eps) * m
