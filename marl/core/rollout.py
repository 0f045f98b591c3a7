"""The data that flows from the runner to the learner: :class:`Rollout` and the
:class:`Policy` protocol the runner acts with. Data only, no behaviour, so the learner
imports the data type and not the code that fills it.

Shape letters: T time, B envs, N agents, O observation shape, S state features,
A actions, H actor hidden units.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from marl.envs.base import EnvSpec


@dataclass
class Rollout:
    """One fragment. Index t of the ``[T + 1]`` tensors is the situation before step t;
    index T is where the next fragment starts (its obs, state, masks)."""

    obs: Tensor  # [T+1, B, N, *O] float32 (uint8 for pixels)
    state: Tensor  # [T+1, B, S]
    action_mask: Tensor  # [T+1, B, N, A] bool
    alive: Tensor  # [T+1, B, N] bool
    first: Tensor  # [T+1, B] bool: obs[t] starts an episode
    prev_actions: Tensor  # [T+1, B, N] int64, A = none (episode start)
    actions: Tensor  # [T, B, N] int64 (0 for agents not alive)
    rewards: Tensor  # [T, B, N]
    terminated: Tensor  # [T, B] bool
    truncated: Tensor  # [T, B] bool
    final_obs: Tensor  # [T, B, N, *O]  valid where terminated | truncated
    final_state: Tensor  # [T, B, S]
    final_action_mask: Tensor  # [T, B, N, A] bool
    h0: Tensor  # [B, N, H] actor hidden state before step 0
    eps: Tensor  # [T] float32: the exploration epsilon the policy acted with at step t
    # [T, B, N] bool, valid where truncated: agent still in the episode that was cut at t
    # (not terminated in its last step; VecBuffers.final_alive). None: all of them.
    final_alive: Tensor | None = None
    # The episodes that ended in this fragment: name -> [n_episodes] float64, as the
    # runner's EpisodeTracker records them (return, length, return/<agent> and the env's
    # own VecBuffers.episode statistics, e.g. the PettingZoo adapter's info/<key>).
    episodes: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def allocate(cls, spec: EnvSpec, num_envs: int, t_len: int, hidden_dim: int) -> Rollout:
        """Zeroed tensors for one fragment, on the CPU (the env side; :meth:`to` moves a
        filled one to a learner's device)."""
        b, n, a = num_envs, spec.n_agents, spec.n_actions
        obs_dtype = getattr(torch, spec.obs_dtype)
        with torch.device("cpu"):  # whatever torch's default device is
            return cls(
                obs=torch.zeros(t_len + 1, b, n, *spec.obs_shape, dtype=obs_dtype),
                state=torch.zeros(t_len + 1, b, spec.state_dim),
                action_mask=torch.ones(t_len + 1, b, n, a, dtype=torch.bool),
                alive=torch.ones(t_len + 1, b, n, dtype=torch.bool),
                first=torch.zeros(t_len + 1, b, dtype=torch.bool),
                prev_actions=torch.full((t_len + 1, b, n), a, dtype=torch.long),
                actions=torch.zeros(t_len, b, n, dtype=torch.long),
                rewards=torch.zeros(t_len, b, n),
                terminated=torch.zeros(t_len, b, dtype=torch.bool),
                truncated=torch.zeros(t_len, b, dtype=torch.bool),
                final_obs=torch.zeros(t_len, b, n, *spec.obs_shape, dtype=obs_dtype),
                final_state=torch.zeros(t_len, b, spec.state_dim),
                final_action_mask=torch.ones(t_len, b, n, a, dtype=torch.bool),
                final_alive=torch.ones(t_len, b, n, dtype=torch.bool),
                h0=torch.zeros(b, n, hidden_dim),
                eps=torch.zeros(t_len),
            )

    def to(self, device: torch.device) -> Rollout:
        """The fragment on ``device``: itself when it is there already (the CPU case:
        nothing is copied), else a copy of every tensor."""
        if self.obs.device == device:
            return self
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)
                                if isinstance(getattr(self, f.name), Tensor)})

    @property
    def t_len(self) -> int:
        return self.actions.shape[0]

    def nbytes(self) -> int:
        return sum(getattr(self, f.name).nbytes for f in fields(self)
                   if isinstance(getattr(self, f.name), Tensor))


class Policy(Protocol):
    """What the runner needs from a learner: batched acting with a carried hidden state,
    and the exploration ``eps`` it acts with (recorded on the rollout; 0 if none)."""

    hidden_dim: int
    eps: float

    def act(self, obs: Tensor, prev_actions: Tensor, first: Tensor, action_mask: Tensor,
            h: Tensor, greedy: bool = False) -> tuple[Tensor, Tensor]:
        """obs ``[B, N, *O]``, prev_actions ``[B, N]``, first ``[B]``, action_mask
        ``[B, N, A]``, h ``[B, N, H]`` -> actions ``[B, N]`` int64, next h."""
        ...


def timeouts_as_terminals(ro: Rollout) -> Rollout:
    """The fragment with every time-limit truncation read as a terminal: nothing is
    bootstrapped after a time-out (JaxMARL's GAE, whose SMAX ``done`` includes the
    step limit)."""
    return replace(ro, terminated=ro.terminated | ro.truncated,
                   truncated=torch.zeros_like(ro.truncated))


TIMEOUTS = {"bootstrap": lambda ro: ro, "terminal": timeouts_as_terminals}
"""``algo.timeouts``: bootstrap from the final state after a time-out (the default:
the episode could have gone on), or treat it as a terminal."""
