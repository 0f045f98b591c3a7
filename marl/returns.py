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
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check(rewards: Tensor, terminated: Tensor, truncated: Tensor, *others: Tensor) -> None:
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
) -> Tensor:
    """TD(lambda) targets, computed backwards (Sutton & Barto eq. 12.18, recursive form).

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

    Returns:
        ``[T, B, ...]`` targets
        ``G_t = r_t + gamma (1 - term_t) [ v_{t+1} + lam c_t (G_{t+1} - v_{t+1}) ]``
        where ``c_t = 0`` at episode ends and at t = T-1, else 1.
    """
    _check(rewards, terminated, truncated, next_values)
    not_term = 1.0 - _expand(terminated, rewards)
    cont = 1.0 - _expand(terminated | truncated, rewards)
    targets = torch.empty_like(rewards)
    g = next_values[-1]  # placeholder: c_{T-1} = 0 so its value never matters
    for t in range(rewards.shape[0] - 1, -1, -1):
        c = cont[t] if t < rewards.shape[0] - 1 else 0.0
        v = next_values[t]
        g = rewards[t] + gamma * not_term[t] * (v + lam * c * (g - v))
        targets[t] = g
    return targets


def discounted_returns(
    rewards: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float,
    bootstrap: Tensor | None = None,
) -> Tensor:
    """Discounted returns to go, reset at every episode end (pg-pong's ``discount_rewards``).

    Args:
        rewards: ``[T, B, ...]``.
        terminated, truncated: ``[T, B]`` bool; either ends the sum.
        gamma: discount in (0, 1].
        bootstrap: optional ``[T, B, ...]`` values added (discounted) where the sum is cut
            without a terminal state: at truncation and at the last step of the fragment.
            ``None`` means pure Monte-Carlo sums (zero beyond what was observed).

    Returns:
        ``[T, B, ...]`` ``R_t = r_t + gamma * R_{t+1}`` within each episode.
    """
    _check(rewards, terminated, truncated, *(() if bootstrap is None else (bootstrap,)))
    if bootstrap is None:
        bootstrap = torch.zeros_like(rewards)
    return td_lambda_targets(rewards, bootstrap, terminated, truncated, gamma, 1.0)
