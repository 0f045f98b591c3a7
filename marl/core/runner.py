"""Vectorised rollout collection: B auto-resetting envs, fixed-length fragments of T steps.

The runner knows nothing of COMA. It asks a :class:`~marl.core.rollout.Policy` for actions
and writes what the env returns into a :class:`~marl.core.rollout.Rollout` whose tensors are
allocated once. There is one acting step, :func:`act_step` (act, record dead agents'
actions as 0, step the env, the next step's previous actions), used by training
(:meth:`Runner.collect`), evaluation (:func:`evaluate`) and video
(:func:`record_episode`). The env's output arrays are allocated once too
(:class:`marl.envs.base.VecBuffers`), so the torch views of them are made once and every
step is a handful of in-place copies.

Shape letters: T time, B envs, N agents, O observation shape, S state features,
A actions, H actor hidden units.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from marl.core.rollout import Policy, Rollout
from marl.envs.base import VecEnv

__all__ = ["EpisodeTracker", "Policy", "Rollout", "Runner", "evaluate", "record_episode"]


class EpisodeTracker:
    """Counts per-env episode return and length, and gathers finished episodes' stats."""

    def __init__(self, env: VecEnv):
        self.env = env
        b = env.num_envs
        self.ret = np.zeros(b, np.float64)
        self.agent_ret = np.zeros((b, env.spec.n_agents), np.float64)
        self.length = np.zeros(b, np.int64)
        self.finished: dict[str, list[np.ndarray]] = {}

    def reset(self) -> None:
        self.ret[:] = 0.0
        self.agent_ret[:] = 0.0
        self.length[:] = 0

    def record(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray | None:
        """Add one step; return the indices of envs whose episode ended (or None)."""
        self.agent_ret += reward
        self.ret += reward.mean(1)
        self.length += 1
        if not done.any():
            return None
        idx = np.flatnonzero(done)
        self._push("return", self.ret[idx])
        self._push("length", self.length[idx].astype(np.float64))
        for a, agent in enumerate(self.env.spec.agents):
            self._push(f"return/{agent}", self.agent_ret[idx, a])
        for k, v in self.env.buf.episode.items():
            self._push(k, v[idx].astype(np.float64))
        self.ret[idx] = 0.0
        self.agent_ret[idx] = 0.0
        self.length[idx] = 0
        return idx

    def _push(self, key: str, values: np.ndarray) -> None:
        self.finished.setdefault(key, []).append(values.copy())

    def pop(self) -> dict[str, np.ndarray]:
        """All finished episodes' stats since the last pop: name -> [n_episodes]."""
        out = {k: np.concatenate(v) for k, v in self.finished.items()}
        self.finished = {}
        return out

    def get_state(self) -> dict[str, Any]:
        return {"ret": self.ret.copy(), "agent_ret": self.agent_ret.copy(),
                "length": self.length.copy(),
                "finished": {k: [v.copy() for v in vs] for k, vs in self.finished.items()}}

    def set_state(self, state: dict[str, Any]) -> None:
        self.ret[:], self.agent_ret[:], self.length[:] = (
            state["ret"], state["agent_ret"], state["length"])
        self.finished = {k: [v.copy() for v in vs] for k, vs in state["finished"].items()}


class Runner:
    """Steps a :class:`VecEnv` with a :class:`Policy` and fills fragments in place."""

    def __init__(self, env: VecEnv, t_len: int, hidden_dim: int, seed: int | None = None):
        self.env, self.t_len = env, t_len
        self.spec = env.spec
        self.ro = Rollout.allocate(env.spec, env.num_envs, t_len, hidden_dim)
        self.episodes = EpisodeTracker(env)
        buf = env.reset(seed=seed)
        # Torch views of the env's output arrays: made once, valid for the env's life.
        self._obs, self._state = torch.from_numpy(buf.obs), torch.from_numpy(buf.state)
        self._mask, self._alive = torch.from_numpy(buf.action_mask), torch.from_numpy(buf.alive)
        self._reward = torch.from_numpy(buf.reward)
        self._term, self._trunc = torch.from_numpy(buf.terminated), torch.from_numpy(buf.truncated)
        self._done = np.zeros(env.num_envs, bool)
        self._done_t = torch.from_numpy(self._done)
        self._write_current(0)
        self.ro.first[0] = True
        self.h = torch.zeros_like(self.ro.h0)
        self.env_steps = 0
        self._started = False

    def _write_current(self, t: int) -> None:
        ro = self.ro
        ro.obs[t].copy_(self._obs)
        ro.state[t].copy_(self._state)
        ro.action_mask[t].copy_(self._mask)
        ro.alive[t].copy_(self._alive)

    _CARRY = ("obs", "state", "action_mask", "alive", "first", "prev_actions")

    def get_state(self) -> dict[str, Any]:
        """What continuing exactly needs: the env (if it can save itself), the situation
        the next fragment starts from, the actor's hidden state and the episode counters."""
        env_state = self.env.get_state() if hasattr(self.env, "get_state") else None
        return {
            "env_steps": self.env_steps,
            "env": env_state,
            "carry": {k: getattr(self.ro, k)[-1].clone() for k in self._CARRY},
            "h": self.h.clone(),
            "episodes": self.episodes.get_state(),
        }

    def set_state(self, state: dict[str, Any], fresh_seed: int) -> bool:
        """Restore :meth:`get_state`; returns False when the env could not be restored
        (it saved no state, or cannot load one): then every env starts a fresh episode
        from ``fresh_seed`` and the counters of the interrupted episodes are dropped."""
        self.env_steps = int(state["env_steps"])
        self._started = True  # the next fragment starts from the restored last slot
        if state["env"] is not None and hasattr(self.env, "set_state"):
            self.env.set_state(state["env"])
            for k, v in state["carry"].items():
                getattr(self.ro, k)[-1].copy_(v)
            self.h.copy_(state["h"])
            self.episodes.set_state(state["episodes"])
            return True
        warnings.warn(f"{type(self.env).__name__} cannot save or restore its state: the "
                      "resumed run starts fresh episodes (not an exact continuation)",
                      stacklevel=2)
        self.env.reset(seed=fresh_seed)
        self._write_current(self.t_len)
        self.ro.first[-1] = True
        self.ro.prev_actions[-1] = self.spec.n_actions
        self.h.zero_()
        self.episodes.reset()
        self.episodes.finished = {}
        return False

    @torch.inference_mode()
    def collect(self, policy: Policy) -> Rollout:
        """Run T steps in every env and return the (reused) rollout buffer; its
        ``episodes`` hold the statistics of the episodes that ended in these T steps
        (they also stay in :attr:`episodes` for the metrics rows)."""
        ro, buf = self.ro, self.env.buf
        # The previous fragment's last situation is this fragment's first one.
        if self._started:
            for name in self._CARRY:
                x = getattr(ro, name)
                x[0].copy_(x[-1])
        self._started = True
        ro.h0.copy_(self.h)
        ro.eps.fill_(policy.eps)  # the learner takes log pi under exactly this epsilon
        finished = self.episodes.finished
        before = {k: len(v) for k, v in finished.items()}  # pushed by earlier fragments
        h = self.h
        for t in range(self.t_len):
            h = act_step(self.env, policy, ro.obs[t], ro.prev_actions[t], ro.first[t],
                         ro.action_mask[t], ro.alive[t], h, False, ro.actions[t])
            ro.rewards[t].copy_(self._reward)
            ro.terminated[t].copy_(self._term)
            ro.truncated[t].copy_(self._trunc)
            done = np.logical_or(buf.terminated, buf.truncated, out=self._done)
            ended = self.episodes.record(buf.reward, done)
            if ended is not None:
                idx = torch.from_numpy(ended)
                ro.final_obs[t, idx] = torch.from_numpy(buf.final_obs[ended])
                ro.final_state[t, idx] = torch.from_numpy(buf.final_state[ended])
                ro.final_action_mask[t, idx] = torch.from_numpy(buf.final_action_mask[ended])
                ro.final_alive[t, idx] = torch.from_numpy(buf.final_alive[ended])
            self._write_current(t + 1)
            ro.first[t + 1].copy_(self._done_t)
            next_prev_actions(ro.prev_actions[t + 1], ro.actions[t], ro.first[t + 1],
                              self.spec.n_actions)
        self.h = h
        self.env_steps += self.t_len * self.env.num_envs
        ro.episodes = {k: np.concatenate(v[before.get(k, 0):]) for k, v in finished.items()
                       if len(v) > before.get(k, 0)}
        return ro


def act_step(env: VecEnv, policy: Policy, obs: Tensor, prev: Tensor, first: Tensor,
             mask: Tensor, alive: Tensor, h: Tensor, greedy: bool, out: Tensor) -> Tensor:
    """The one acting step: actions into ``out`` ``[B, N]``, env stepped; returns next h.

    Agents that are not alive act "0" on record, so nothing they sample at random ever
    reaches another agent's critic input or their own next previous-action input.
    """
    actions, h = policy.act(obs, prev, first, mask, h, greedy=greedy)
    out.copy_(actions).masked_fill_(~alive, 0)
    env.step(out.numpy())
    return h


def next_prev_actions(out: Tensor, actions: Tensor, first: Tensor, a_none: int) -> None:
    """The next step's previous actions: the recorded ones, ``a_none`` where an episode
    starts (``first`` ``[B]``)."""
    out.copy_(actions).masked_fill_(first[:, None], a_none)


def _play(env: VecEnv, policy: Policy, hidden_dim: int, greedy: bool) -> Iterator[np.ndarray]:
    """Act forever in ``env`` (just reset); yields the ``done`` flags ``[B]`` after each
    step (``env.buf`` holds that step's output)."""
    b, n, a = env.num_envs, env.spec.n_agents, env.spec.n_actions
    buf = env.buf
    obs, mask = torch.from_numpy(buf.obs), torch.from_numpy(buf.action_mask)
    alive = torch.from_numpy(buf.alive)
    prev = torch.full((b, n), a, dtype=torch.long, device="cpu")  # the env side
    actions = torch.zeros(b, n, dtype=torch.long, device="cpu")
    first = torch.ones(b, dtype=torch.bool, device="cpu")
    h = torch.zeros(b, n, hidden_dim, device="cpu")
    done = np.zeros(b, bool)
    done_t = torch.from_numpy(done)
    while True:
        h = act_step(env, policy, obs, prev, first, mask, alive, h, greedy, actions)
        np.logical_or(buf.terminated, buf.truncated, out=done)
        yield done
        first.copy_(done_t)
        next_prev_actions(prev, actions, first, a)


@torch.inference_mode()
def evaluate(env: VecEnv, policy: Policy, hidden_dim: int, seed: int | None = None,
             greedy: bool = True) -> dict[str, np.ndarray]:
    """Run the first episode of every env of ``env`` to its end; stats per episode.

    Every env contributes exactly one episode, so short and long episodes are counted
    fairly (stopping at the first K finished episodes would favour short ones).
    """
    tracker = EpisodeTracker(env)
    pending = np.ones(env.num_envs, bool)
    stats: dict[str, list[np.ndarray]] = {}
    env.reset(seed=seed)
    for done in _play(env, policy, hidden_dim, greedy):
        ended = tracker.record(env.buf.reward, done)
        if ended is not None:
            popped = tracker.pop()  # exactly the episodes that ended in this step
            keep = pending[ended]  # the first episode of each env counts, later ones don't
            pending[ended] = False
            for k, v in popped.items():
                stats.setdefault(k, []).append(v[keep])
            if not pending.any():
                break
    return {k: np.concatenate(v) for k, v in stats.items()}


@torch.inference_mode()
def record_episode(env: VecEnv, policy: Policy, hidden_dim: int, max_frames: int,
                   seed: int | None = None) -> list[np.ndarray]:
    """Frames (uint8 ``[H, W, 3]``) of one greedy episode of env 0 of ``env``.

    ``env`` needs a ``render_rgb(env_index, final=False)`` method; the last frame is the
    ended episode's final situation.
    """
    render = getattr(env, "render_rgb", None)
    if render is None:
        raise TypeError(f"{type(env).__name__} cannot render frames (no render_rgb)")
    env.reset(seed=seed)
    frames = [render(0)]
    for done in _play(env, policy, hidden_dim, greedy=True):
        if len(frames) >= max_frames:
            break
        if done[0]:
            frames.append(render(0, final=True))
            break
        frames.append(render(0))
    return frames
