"""Episode replay for the off-policy value-decomposition learner.

The runner hands over fixed-length fragments from B auto-resetting envs; QMIX's
recurrent agent utilities want whole episodes. Of the two ways to bridge that -- store
fixed-length sequences with a stored (stale) hidden state and a burn-in, or assemble
whole episodes from consecutive fragments -- this buffer does the second (PyMARL's
``EpisodeBatch``): every env has a staging row that collects its current episode step by
step across fragments; when the episode ends the row is copied into the ring of stored
episodes, padded to ``episode_limit`` steps. Why: the GRU then always unrolls from the
episode's true start (zero hidden state, no staleness, no burn-in length to tune), and
TD(lambda) targets see the whole episode. The price is memory for padding (an episode of
length l costs as much as one of ``episode_limit``) and that an episode is trainable only
once it has ended.

Layout of one stored episode (``L = episode_limit``; slot t is the situation before
step t, slot ``len`` the one the last step led to: the final observation, state and
action mask of the ended episode, from ``Rollout.final_*``):

* ``obs [L+1, N, *O]``, ``state [L+1, S]``, ``avail [L+1, N, A]``, ``alive [L+1, N]``;
* ``actions [L, N]``, ``reward [L]`` (team reward: mean over agents), ``terminated [L]``,
  ``truncated [L]`` (the episode stopped at that step without a terminal state),
  ``filled [L]`` (step t happened: the padding mask).

Padding: obs / state 0, avail all True (never an empty argmax), alive False, filled
False. At a truncation the final ``alive`` flags are those of the last step (the rollout
does not carry the env's final alive flags).

Shape letters: E episodes, L episode limit, N agents, O observation shape, S state
features, A actions, B envs, T fragment length.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

from marl.core.rollout import Rollout
from marl.envs.base import EnvSpec


@dataclass
class Episodes:
    """E episodes padded to L steps, batch-first (see the module docstring)."""

    obs: Tensor  # [E, L+1, N, *O]
    state: Tensor  # [E, L+1, S]
    avail: Tensor  # [E, L+1, N, A] bool
    alive: Tensor  # [E, L+1, N] bool
    actions: Tensor  # [E, L, N] int64
    reward: Tensor  # [E, L]
    terminated: Tensor  # [E, L] bool
    truncated: Tensor  # [E, L] bool
    filled: Tensor  # [E, L] bool

    @classmethod
    def allocate(cls, spec: EnvSpec, e: int, limit: int) -> Episodes:
        n, a = spec.n_agents, spec.n_actions
        out = cls(
            obs=torch.zeros(e, limit + 1, n, *spec.obs_shape, dtype=getattr(torch, spec.obs_dtype)),
            state=torch.zeros(e, limit + 1, spec.state_dim),
            avail=torch.ones(e, limit + 1, n, a, dtype=torch.bool),
            alive=torch.zeros(e, limit + 1, n, dtype=torch.bool),
            actions=torch.zeros(e, limit, n, dtype=torch.long),
            reward=torch.zeros(e, limit),
            terminated=torch.zeros(e, limit, dtype=torch.bool),
            truncated=torch.zeros(e, limit, dtype=torch.bool),
            filled=torch.zeros(e, limit, dtype=torch.bool),
        )
        return out

    def items(self) -> list[tuple[str, Tensor]]:
        return [(f.name, getattr(self, f.name)) for f in fields(self)]

    def nbytes(self) -> int:
        return sum(x.nbytes for _, x in self.items())

    def clear_rows(self, rows: Tensor) -> None:
        """Reset ``rows`` to padding."""
        for name, x in self.items():
            x[rows] = True if name == "avail" else 0

    def take(self, rows: Tensor, t_len: int) -> Episodes:
        """Rows ``rows``, the first ``t_len`` steps (``t_len + 1`` situations)."""
        return Episodes(**{name: x[rows, : t_len + (0 if x.shape[1] == self.limit else 1)]
                           for name, x in self.items()})

    @property
    def limit(self) -> int:
        return self.actions.shape[1]


def available_memory_bytes() -> int | None:
    """MemAvailable of /proc/meminfo (Linux), or None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def buffer_bytes(spec: EnvSpec, capacity: int, limit: int, num_envs: int) -> int:
    """Bytes of a buffer of ``capacity`` episodes plus ``num_envs`` staging rows."""
    return Episodes.allocate(spec, 1, limit).nbytes() * (capacity + num_envs)


class EpisodeBuffer:
    """Ring of ``capacity`` whole episodes, filled from rollout fragments.

    :meth:`add` takes a fragment, :meth:`sample` draws episodes uniformly (with
    replacement, from its own seeded generator, saved by :meth:`state_dict`).
    Raises ValueError before allocating when the buffer would not fit in memory.
    """

    def __init__(self, spec: EnvSpec, capacity: int, limit: int, num_envs: int, seed: int = 0,
                 memory_bytes: int | None = None):
        need = buffer_bytes(spec, capacity, limit, num_envs)
        have = available_memory_bytes() if memory_bytes is None else memory_bytes
        if have is not None and need > have:
            raise ValueError(
                f"replay buffer would need {need / 2**30:.2f} GiB (algo.vd.buffer_episodes = "
                f"{capacity} episodes of up to algo.vd.episode_limit = {limit} steps), but "
                f"only {have / 2**30:.2f} GiB of memory is available: lower buffer_episodes "
                "or episode_limit")
        self.spec, self.capacity, self.limit = spec, capacity, limit
        self.store = Episodes.allocate(spec, capacity, limit)
        self.stage = Episodes.allocate(spec, num_envs, limit)
        self.pos = torch.zeros(num_envs, dtype=torch.long)  # next step slot per env
        self.length = torch.zeros(capacity, dtype=torch.long)
        self.size = 0  # stored episodes
        self.next_idx = 0  # ring write position
        self.episodes_added = 0
        self.gen = torch.Generator().manual_seed(seed)
        self._rows = torch.arange(num_envs)

    def nbytes(self) -> int:
        return self.store.nbytes() + self.stage.nbytes()

    # ------------------------------------------------------------------ filling
    @torch.no_grad()
    def add(self, ro: Rollout) -> int:
        """Append a fragment to the staging rows; store every episode that ended in it.
        Returns how many episodes were stored."""
        st, rows, stored = self.stage, self._rows, 0
        team_reward = ro.rewards.mean(-1)  # [T, B]
        for t in range(ro.t_len):
            # An episode start with a partial episode staged: the runner restarted the
            # envs (resume without env state); the partial episode has no end, drop it.
            restart = ro.first[t] & (self.pos > 0)
            if restart.any():
                self._drop(restart.nonzero().squeeze(1))
            p = self.pos
            if bool((p >= self.limit).any()):
                raise ValueError(
                    f"an episode ran longer than algo.vd.episode_limit = {self.limit} steps: "
                    "set it to at least the env's max_steps")
            st.obs[rows, p] = ro.obs[t]
            st.state[rows, p] = ro.state[t]
            st.avail[rows, p] = ro.action_mask[t]
            st.alive[rows, p] = ro.alive[t]
            st.actions[rows, p] = ro.actions[t]
            st.reward[rows, p] = team_reward[t]
            st.terminated[rows, p] = ro.terminated[t]
            st.truncated[rows, p] = ro.truncated[t] & ~ro.terminated[t]
            st.filled[rows, p] = True
            self.pos += 1
            done = ro.terminated[t] | ro.truncated[t]
            if bool(done.any()):
                idx = done.nonzero().squeeze(1)
                end = self.pos[idx]  # slot of the situation the last step led to
                st.obs[idx, end] = ro.final_obs[t, idx]
                st.state[idx, end] = ro.final_state[t, idx]
                st.avail[idx, end] = ro.final_action_mask[t, idx]
                st.alive[idx, end] = ro.alive[t, idx]
                self._commit(idx)
                stored += len(idx)
        return stored

    def _commit(self, idx: Tensor) -> None:
        """Copy the finished staging rows ``idx`` into the ring; reset them."""
        keep = idx[-self.capacity:]
        dst = (self.next_idx + torch.arange(len(keep), device=keep.device)) % self.capacity
        for (_, s), (_, x) in zip(self.stage.items(), self.store.items(), strict=True):
            x[dst] = s[keep]
        self.length[dst] = self.pos[keep]
        self.next_idx = int((self.next_idx + len(keep)) % self.capacity)
        self.size = min(self.size + len(keep), self.capacity)
        self.episodes_added += len(idx)
        self._drop(idx)

    def _drop(self, idx: Tensor) -> None:
        self.stage.clear_rows(idx)
        self.pos[idx] = 0

    # ------------------------------------------------------------------ sampling
    def sample(self, e: int) -> tuple[Episodes, Tensor]:
        """``e`` stored episodes drawn uniformly with replacement, trimmed to the longest
        of them; returns (episodes batch-first, their ring indices ``[E]``)."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = torch.randint(self.size, (e,), generator=self.gen, device=self.gen.device)
        idx = idx.to(self.length.device)  # drawn on the CPU generator: the same on any device
        t_len = int(self.length[idx].max())
        return self.store.take(idx, t_len), idx

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """Stored episodes (only the filled part of the ring), staging rows, counters and
        the sampling generator: a resumed run samples exactly what it would have."""
        return {
            "store": {k: x[: self.size].clone() for k, x in self.store.items()},
            "stage": {k: x.clone() for k, x in self.stage.items()},
            "pos": self.pos.clone(), "length": self.length[: self.size].clone(),
            "size": self.size, "next_idx": self.next_idx,
            "episodes_added": self.episodes_added, "gen": self.gen.get_state(),
        }

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        size = int(sd["size"])
        if size > self.capacity or sd["pos"].shape != self.pos.shape:
            raise ValueError(f"replay buffer of {size} episodes / {sd['pos'].shape[0]} envs "
                             f"does not fit capacity {self.capacity} / {self.pos.shape[0]} envs")
        for k, x in self.store.items():
            x[:size] = sd["store"][k]
        for k, x in self.stage.items():
            x.copy_(sd["stage"][k])
        self.pos.copy_(sd["pos"])
        self.length[:size] = sd["length"]
        self.size, self.next_idx = size, int(sd["next_idx"])
        self.episodes_added = int(sd["episodes_added"])
        self.gen.set_state(sd["gen"])
