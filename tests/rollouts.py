"""A random fragment with known episode ends, shared by the learner and ablation tests."""

from __future__ import annotations

import torch

from marl.core.rollout import Rollout


def random_rollout(T: int, B: int, N: int, O: int, S: int, A: int,  # noqa: E741, N803
                   term_at: tuple[int, int], trunc_at: tuple[int, int],
                   seed: int = 0, eps: float = 0.5) -> Rollout:
    """T steps of B envs, N agents: env ``term_at[1]`` terminates at step ``term_at[0]``,
    env ``trunc_at[1]`` is truncated at step ``trunc_at[0]``, the others run through (their
    last step bootstraps from the next fragment's first state). Every agent is alive and
    every action allowed; observations, states, rewards and actions are random; the
    policy acted with epsilon ``eps`` (0.5: ``ComaConfig``'s ``eps_start``)."""
    g = torch.Generator().manual_seed(seed)
    term = torch.zeros(T, B, dtype=torch.bool)
    trunc = torch.zeros(T, B, dtype=torch.bool)
    term[term_at] = True
    trunc[trunc_at] = True
    first = torch.zeros(T + 1, B, dtype=torch.bool)
    first[0] = True
    first[1:] = term | trunc
    actions = torch.randint(0, A, (T, B, N), generator=g)
    prev = torch.full((T + 1, B, N), A)
    prev[1:] = actions.masked_fill(first[1:, :, None], A)
    return Rollout(
        obs=torch.randn(T + 1, B, N, O, generator=g), state=torch.randn(T + 1, B, S, generator=g),
        action_mask=torch.ones(T + 1, B, N, A, dtype=torch.bool),
        alive=torch.ones(T + 1, B, N, dtype=torch.bool), first=first, prev_actions=prev,
        actions=actions, rewards=torch.randn(T, B, N, generator=g), terminated=term,
        truncated=trunc, final_obs=torch.randn(T, B, N, O, generator=g),
        final_state=torch.randn(T, B, S, generator=g),
        final_action_mask=torch.ones(T, B, N, A, dtype=torch.bool),
        final_alive=torch.ones(T, B, N, dtype=torch.bool), h0=torch.zeros(B, N, 0),
        eps=torch.full((T,), eps))
