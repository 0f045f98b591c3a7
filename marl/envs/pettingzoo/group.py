"""The adapter's semantics, once: a few PettingZoo envs writing into rows of VecBuffers.

Used in process (the whole batch) and in each worker process (its slice) alike.

Episode statistics from ``infos`` (:func:`info_stats`): in the step where an env's
episode ends, every numeric scalar ``infos[agent][key]`` (bool, int, float, a numpy
scalar or 0-d array; arrays such as ``action_mask``, strings and mappings are skipped)
becomes ``info/<key>``, the mean over the agents that report it, and ``info/<agent>/<key>``,
each agent's own value. They go to ``VecBuffers.episode`` (float32, NaN for an ended
episode that did not report the key), so they reach the metrics as
``train/info/<key>_mean`` and ``eval/info/<key>_mean`` (see
:func:`marl.io.metrics.summarise_episodes`, which keeps the per-agent means only where
the agents' values differ).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from marl.envs.base import VecBuffers
from marl.envs.pettingzoo.layout import Layout
from marl.envs.pettingzoo.snapshot import restore_env, snapshot_env

INFO = "info"
"""Namespace of the episode statistics taken from ``infos``."""


def numeric(value: Any) -> float | None:
    """``value`` as a float if it is a numeric scalar (bool, int, float, numpy scalar or
    0-d array), else None."""
    if isinstance(value, (bool, int, float, np.number, np.bool_)):
        return float(value)
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "biuf":
        return float(value)
    return None


def info_stats(infos: Mapping, agents: list[str]) -> dict[str, float]:
    """One ended episode's statistics from its last step's ``infos`` (the module's rule):
    ``info/<key>`` (mean over the agents reporting it) and ``info/<agent>/<key>``."""
    out: dict[str, float] = {}
    reported: dict[str, list[float]] = {}
    for a in agents:
        info = infos.get(a)
        if not isinstance(info, Mapping):
            continue
        for key, value in info.items():
            x = numeric(value)
            if x is not None and isinstance(key, str):
                reported.setdefault(key, []).append(x)
                out[f"{INFO}/{a}/{key}"] = x
    for key, xs in reported.items():
        out[f"{INFO}/{key}"] = xs[0] if len(set(xs)) == 1 else sum(xs) / len(xs)
    return out


def write_episode_stats(episode: dict[str, np.ndarray], ended: dict[int, dict[str, float]],
                        num_envs: int) -> None:
    """Write the ended envs' :func:`info_stats` (env row -> stats) into ``episode``: a key
    first seen gets a ``[num_envs]`` float32 column, an ended env without a key NaN."""
    for stats in ended.values():
        for key in stats:
            if key not in episode:
                episode[key] = np.full(num_envs, np.nan, np.float32)
    for j, stats in ended.items():
        for key, column in episode.items():
            column[j] = stats.get(key, np.nan)


class EnvGroup:
    """A few envs writing into rows of VecBuffers (the whole batch, or one worker's slice)."""

    def __init__(self, envs: list, layout: Layout, buf: VecBuffers) -> None:
        self.envs = envs
        self.lay = layout
        self.buf = buf
        self.agents = list(layout.agents)
        self.index = {a: i for i, a in enumerate(self.agents)}
        obs = buf.obs
        k, n = obs.shape[:2]
        if layout.obs_kind == "hwc":
            native = obs.transpose(0, 1, 3, 4, 2)
        elif layout.obs_kind == "hw":
            native = obs[:, :, 0]
        elif layout.obs_kind == "flat":
            native = obs.reshape(k, n, *layout.native_shape)
        else:
            native = obs
        self._native = [native[j] for j in range(k)]  # per env: [N, *native_shape] views
        self._obs = [obs[j] for j in range(k)]
        self._mask = [buf.action_mask[j] for j in range(k)]
        self._alive = [buf.alive[j] for j in range(k)]
        self._state = [buf.state[j] for j in range(k)]
        self._names: list[list[str]] = [[] for _ in range(k)]  # env.agents after last call
        self._live: list[list[tuple[int, str]]] = [[] for _ in range(k)]
        self._mask_mode = layout.mask_mode
        self.ended_stats: dict[int, dict[str, float]] = {}
        """The last step's ended envs (row in this group) -> their :func:`info_stats`."""

    # -- writing one env's outputs
    def _write(self, j: int, obs: Mapping, infos: Mapping, pairs: list[tuple[int, str]]) -> None:
        native, mask_rows, mm = self._native[j], self._mask[j], self._mask_mode
        for i, a in pairs:
            o = obs.get(a)
            if o is None:
                native[i] = 0
                if mm is not None:
                    mask_rows[i] = True
                continue
            if mm is None:
                native[i] = o
                continue
            if mm == "obs":
                native[i] = o["observation"]
                m = o["action_mask"]
            else:
                native[i] = o
                info = infos.get(a)
                m = info.get("action_mask") if isinstance(info, Mapping) else None
            row = mask_rows[i]
            if m is None:
                row[:] = True
            else:
                row[:] = m
                if not row.any():
                    row[0] = True  # nothing allowed: the waiting player of a turn-based game

    def _blank(self, j: int, rows: list[int]) -> None:
        if rows:
            self._native[j][rows] = 0
            self._mask[j][rows] = True

    def _set_live(self, j: int, names: list[str]) -> list[int]:
        """Record env ``j``'s live agents; returns the rows of agents not live."""
        index = self.index
        self._names[j] = list(names)
        live = [(index[a], a) for a in names if a in index]
        self._live[j] = live
        alive = self._alive[j]
        alive[:] = False
        rows = [i for i, _ in live]
        alive[rows] = True
        return [i for i in range(len(self.agents)) if not alive[i]]

    def _write_state(self, j: int) -> None:
        if self.lay.state_from_env:
            self._state[j][:] = np.asarray(self.envs[j].state()).reshape(-1)
        elif self.lay.state_dim:
            self._state[j][:] = self._obs[j].reshape(-1)

    def _reset_one(self, j: int, seed: int | None) -> None:
        env = self.envs[j]
        out = env.reset(seed=seed)
        obs, infos = out if isinstance(out, tuple) else (out, {})
        if not env.agents:
            raise RuntimeError(f"env {j} has no agents after reset()")
        dead = self._set_live(j, env.agents)
        self._write(j, obs, infos or {}, self._live[j])
        self._blank(j, dead)
        self._write_state(j)

    # -- VecEnv-like API on the group
    def reset(self, seeds: list[int | None]) -> None:
        buf = self.buf
        buf.start_episodes()  # alive: set per env by _reset_one
        for j, s in enumerate(seeds):
            self._reset_one(j, s)

    def step(self, actions: np.ndarray) -> None:
        buf = self.buf
        buf.terminated[:] = False
        buf.truncated[:] = False
        reward = buf.reward
        agents = self.agents
        acts = actions.tolist()
        self.ended_stats = ended_stats = {}
        for j, env in enumerate(self.envs):
            row = acts[j]
            live = self._live[j]
            obs, rew, term, trunc, infos = env.step({a: row[i] for i, a in live})
            reward[j] = [rew.get(a, 0.0) for a in agents]
            now = env.agents
            ended = not now or all(term.get(a, False) or trunc.get(a, False) for a in now)
            if not ended:
                if now == self._names[j]:
                    self._write(j, obs, infos, live)
                else:
                    dead = self._set_live(j, now)
                    self._write(j, obs, infos, self._live[j])
                    self._blank(j, dead)
                self._write_state(j)
                continue
            ended_stats[j] = self._end_episode(j, obs, term, trunc, infos, live)
        if buf.episode or any(ended_stats.values()):
            write_episode_stats(buf.episode, ended_stats, len(self.envs))

    def _end_episode(self, j: int, obs: Mapping, term: Mapping, trunc: Mapping,
                     infos: Mapping, live: list[tuple[int, str]]) -> dict[str, float]:
        """Env ``j``'s episode ended in this step: write its final outputs (what the env
        returned in this step) and who was cut, reset it; returns its :func:`info_stats`."""
        buf, agents = self.buf, self.agents
        pairs = [(i, a) for i, a in enumerate(agents) if a in obs]
        self._write(j, obs, infos, pairs)
        present = {i for i, _ in pairs}
        self._blank(j, [i for i in range(len(agents)) if i not in present])
        self._write_state(j)
        # Who was cut by truncation rather than terminated: only these agents are
        # bootstrapped, also when others terminated in this same step (the env as
        # a whole is then truncated).
        final_alive = buf.final_alive[j]
        final_alive[:] = False
        for i, a in live:
            final_alive[i] = trunc.get(a, False) and not term.get(a, False)
        buf.truncated[j] = final_alive.any()
        buf.terminated[j] = not buf.truncated[j]
        buf.final_obs[j] = self._obs[j]
        buf.final_state[j] = self._state[j]
        buf.final_action_mask[j] = self._mask[j]
        stats = info_stats(infos or {}, agents)
        self._reset_one(j, None)
        return stats

    def snapshot(self) -> list[bytes]:
        """Every env's exact state (:func:`snapshot_env`)."""
        return [snapshot_env(env) for env in self.envs]

    def restore(self, snapshots: list[bytes]) -> None:
        """Replace the envs by restored snapshots; the agent bookkeeping follows them.

        The buffers are restored by the caller (they may live in shared memory).
        """
        if len(snapshots) != len(self.envs):
            raise ValueError(f"{len(snapshots)} env snapshots for {len(self.envs)} envs")
        self.close()
        self.envs = envs = [restore_env(data) for data in snapshots]
        for j, env in enumerate(envs):
            self._set_live(j, env.agents)

    def close(self) -> None:
        for env in self.envs:
            with contextlib.suppress(Exception):
                env.close()

