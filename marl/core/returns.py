"""Return maths as pure tensor functions: TD(lambda) targets and discounted returns.

Every function takes tensors whose first axis is time (T) and whose remaining axes
(typically B parallel envs, N agents) broadcast against the done flags, which are
``[T, B]`` and are broadcast over the trailing axes of the reward.

Episode ends inside a fragment are first-class:

* ``terminated[t]``: the episode reached a terminal state at step t; nothing after it is
  worth anything, so there is no bootstrap.
* ``truncated[t]``: the episode was cut (time limit) at step t; the state it was cut in
  still has a value, so we bootstrap from ``next_values[t]`` (the value of the final
  state), but the lambda-recursion must not reach into the next episode.
* the end of the fragment (t = T-1) behaves like truncation: bootstrap from
  ``next_values[T-1]``, the value of the state the next fragment starts from.

:func:`td_lambda_targets` computes the TD(lambda) targets backwards (Sutton & Barto eq.
12.18, recursive form)::

    G_t = r_t + gamma (1 - term_t) [ v_{t+1} + lam c_t (G_{t+1} - v_{t+1}) ]

where ``c_t = 0`` at episode ends and at t = T-1, else 1.

Agents that leave an episode early (a StarCraft unit that dies) are not an episode end:
the game is cooperative and its return is the team's, so an agent's last action is
credited with what the team gets after it left (COMA paper; PyMARL runs the targets of
dead agents on through the episode). ``stays`` (``[T, B, N]``: agent still in the
episode after step t, i.e. it acts at t + 1, or at a truncation it had not terminated)
makes :func:`td_lambda_targets` continue a leaving agent's target with the team's: where
``stays`` is False and the episode goes on (not terminated), the agent's own ``v_{t+1}``
and ``G_{t+1}`` are replaced by the mean value and mean target of the agents that stay,
``vbar_{t+1}`` and ``Gbar_{t+1}``; for an agent leaving at t::

    G_t = r_t + gamma (1 - term_t) [ vbar_{t+1} + lam c_t (Gbar_{t+1} - vbar_{t+1}) ]

Nothing recorded for the agent after it left is read. With nobody staying the target is
``r_t`` alone.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check(rewards: Tensor, terminated: Tensor, truncated: Tensor, *others: Tensor,
           stays: Tensor | None = None) -> None:
    if rewards.dim() < 1:
        raise ValueError(f"rewards must have a time axis, got shape {tuple(rewards.shape)}")
    t = rewards.shape[0]
    for name, x in (("terminated", terminated), ("truncated", truncated)):
        if x.shape[0] != t or x.dim() > rewards.dim():
            raise ValueError(
                f"{name} must be [T, ...] with T={t} and at most rewards' rank, "
                f"got {tuple(x.shape)} vs rewards {tuple(rewards.shape)}"
            )
    for x in others:
        if x.shape != rewards.shape:
            raise ValueError(
                f"values must have the rewards' shape {tuple(rewards.shape)}, got {tuple(x.shape)}"
            )
    if stays is not None and (stays.shape != rewards.shape or rewards.dim() != 3):
        raise ValueError(f"stays must be [T, B, N] like rewards {tuple(rewards.shape)}, "
                         f"got {tuple(stays.shape)}")


def _expand(flag: Tensor, like: Tensor) -> Tensor:
    """[T, B] flag -> float tensor broadcastable to ``like`` ([T, B, ...])."""
    flag = flag.to(like.dtype)
    return flag.reshape(flag.shape + (1,) * (like.dim() - flag.dim()))


def td_lambda_targets(
    rewards: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float,
    lam: float,
    stays: Tensor | None = None,
) -> Tensor:
    """TD(lambda) targets ``G_t`` ``[T, B, ...]``, computed backwards (the recursion, and
    the targets of agents that leave: the module docstring).

    Args:
        rewards: ``[T, B, ...]`` reward received after acting at step t.
        next_values: ``[T, B, ...]`` value estimate of the state reached after step t
            (the final state when the episode ended at t; ignored where terminated).
        terminated: ``[T, B]`` bool, episode reached a terminal state at step t.
        truncated: ``[T, B]`` bool, episode was cut at step t (bootstrap, but stop the
            recursion there).
        gamma: discount in (0, 1].
        lam: lambda in [0, 1]; 0 gives one-step TD targets, 1 the Monte-Carlo return
            (bootstrapped at truncation and at the fragment end).
        stays: optional ``[T, B, N]`` bool (rewards ``[T, B, N]``): agent n is still in
            the episode after step t (see the module docstring); ``None``: every agent
            stays.
    """
    _check(rewards, terminated, truncated, next_values, stays=stays)
    not_term = 1.0 - _expand(terminated, rewards)
    cont = 1.0 - _expand(terminated | truncated, rewards)
    targets = torch.empty_like(rewards)
    g = next_values[-1]  # placeholder: c_{T-1} = 0 so its value never matters
    for t in range(rewards.shape[0] - 1, -1, -1):
        c = cont[t] if t < rewards.shape[0] - 1 else 0.0
        v = next_values[t]
        if stays is not None:
            v, g = _team_continuation(v, g, stays[t])
        g = rewards[t] + gamma * not_term[t] * (v + lam * c * (g - v))
        targets[t] = g
    return targets


def _team_continuation(v: Tensor, g: Tensor, stays: Tensor) -> tuple[Tensor, Tensor]:
    """``v``, ``g`` ``[B, N]`` with the entries of agents that left (``stays`` False)
    replaced by the means over the agents that stay (0 where nobody stays)."""
    w = stays.to(v.dtype)
    n = w.sum(-1, keepdim=True).clamp_min(1.0)
    # where(): a left agent's entries may be garbage (inf, nan) and must not reach the sum
    v_in, g_in = torch.where(stays, v, 0.0), torch.where(stays, g, 0.0)
    vbar, gbar = v_in.sum(-1, keepdim=True) / n, g_in.sum(-1, keepdim=True) / n
    return torch.where(stays, v, vbar), torch.where(stays, g, gbar)


def discounted_returns(
    rewards: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float,
    bootstrap: Tensor | None = None,
    stays: Tensor | None = None,
) -> Tensor:
    """Discounted returns to go, reset at every episode end (pg-pong's ``discount_rewards``).

    Args:
        rewards: ``[T, B, ...]``.
        terminated: ``[T, B]`` bool, the episode ended in a terminal state (ends the sum).
        truncated: ``[T, B]`` bool, the episode was cut (a time limit; ends the sum).
        gamma: discount in (0, 1].
        bootstrap: optional ``[T, B, ...]`` values added (discounted) where the sum is cut
            without a terminal state: at truncation and at the last step of the fragment.
            ``None`` means pure Monte-Carlo sums (zero beyond what was observed).
        stays: optional ``[T, B, N]``: as in :func:`td_lambda_targets`, an agent that
            leaves the episode continues with the team's mean return.

    Returns:
        ``[T, B, ...]`` ``R_t = r_t + gamma * R_{t+1}`` within each episode.
    """
    _check(rewards, terminated, truncated, *(() if bootstrap is None else (bootstrap,)))
    if bootstrap is None:
        bootstrap = torch.zeros_like(rewards)
    return td_lambda_targets(rewards, bootstrap, terminated, truncated, gamma, 1.0, stays)


TEAM_REWARDS = ("sum", "mean", "off")
"""``algo.team_reward`` choices (see :func:`team_rewards`)."""


def team_rewards(rewards: Tensor, acted: Tensor, mode: str) -> Tensor:
    """The cooperative game's one reward, given to every agent: ``[T, B, N]``.

    The COMA paper's game has a single team reward. Envs with per-agent rewards (mpe2's
    spread with ``local_ratio > 0``) become that game with ``sum`` (every agent gets the
    sum of the rewards of the agents that acted at t) or ``mean`` (their mean); ``off``
    keeps each agent's own reward. Agents that did not act at t (``acted`` False: dead,
    or padding) contribute nothing: what an env writes for them is not a reward.

    Args:
        rewards: ``[T, B, N]`` per-agent rewards.
        acted: ``[T, B, N]`` bool, agent acted at t.
        mode: one of :data:`TEAM_REWARDS`.
    """
    if mode not in TEAM_REWARDS:
        raise ValueError(f"team reward mode {mode!r} unknown: use one of {TEAM_REWARDS}")
    if acted.shape != rewards.shape or rewards.dim() != 3:
        raise ValueError(f"rewards and acted must both be [T, B, N], got "
                         f"{tuple(rewards.shape)} and {tuple(acted.shape)}")
    if mode == "off":
        return rewards
    w = acted.to(rewards.dtype)
    total = torch.where(acted, rewards, 0.0).sum(-1, keepdim=True)
    if mode == "mean":
        total = total / w.sum(-1, keepdim=True).clamp_min(1.0)
    return total.expand_as(rewards)
