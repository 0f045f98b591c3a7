"""The batched numpy core of the Dec-POMDP env: the rules of :mod:`marl.envs.dpomdp`
over B envs at once, no Python loop over envs."""

from __future__ import annotations

from typing import Any

import numpy as np

from marl.envs.base import EnvSpec, VecBuffers, load_state, save_state
from marl.envs.checks import as_config, check_batch_actions, check_num_envs
from marl.envs.dpomdp.config import DPOMDPEnvConfig
from marl.envs.dpomdp.model import DecPOMDP
from marl.envs.dpomdp.parser import load_cached

EPISODE_METRICS = ("team_return",)
"""Per-episode statistics: the summed team reward (the runner's ``return`` is the same
number; ``return`` itself is the runner's name, so the env's own copy has another)."""


def obs_dim(model: DecPOMDP, horizon: int) -> int:
    """Length of every agent's observation: ``max_i |O_i| + 1`` (last observation, or
    "none") plus ``horizon`` (the step t)."""
    return max(model.n_obs) + 1 + horizon


def encode_history(model: DecPOMDP, horizon: int, history: tuple[int, ...]) -> np.ndarray:
    """``[len(history) + 1, D]`` float32: the observations an agent whose own
    observations so far are ``history`` was given at steps ``0..len(history)``."""
    none = max(model.n_obs)
    out = np.zeros((len(history) + 1, obs_dim(model, horizon)), np.float32)
    for t in range(len(history) + 1):
        out[t, none if t == 0 else history[t - 1]] = 1.0
        if t < horizon:
            out[t, none + 1 + t] = 1.0
    return out


def cumulative_rows(p: np.ndarray) -> np.ndarray:
    """Rows of ``p`` [..., K] as cumulative sums for sampling by ``count(cum <= u)``:
    from each row's last positive entry on the sum is exactly 1, so ``u`` in [0, 1)
    never picks an outcome of probability 0."""
    cum = np.cumsum(p, -1)
    last = (p.shape[-1] - 1) - np.argmax(p[..., ::-1] > 0, -1)
    cum[np.arange(p.shape[-1]) >= last[..., None]] = 1.0
    return cum


class DPOMDPCore:
    """``num_envs`` copies of one Dec-POMDP stepped at once in numpy (a :class:`VecEnv`).

    Every episode lasts exactly ``horizon`` steps and then terminates. Hidden states,
    step counters and last joint observations live in ``[B]`` arrays; a step gathers the
    rows ``T(. | s, ja)`` and ``O(. | ja, s')`` of every env from cumulative tables and
    samples both by comparison with one uniform draw each. ``model`` (a parsed
    :class:`~marl.envs.dpomdp.model.DecPOMDP`) replaces the file of ``cfg.problem``.

    With ``autoreset=True`` (the runner's case) an ended episode is followed by a new one
    in the same ``step``; with ``autoreset=False`` ``buf.alive`` turns False for it and
    stepping again raises RuntimeError until ``reset``.
    """

    def __init__(
        self,
        cfg: DPOMDPEnvConfig | None = None,
        num_envs: int = 1,
        seed: int | None = None,
        autoreset: bool = True,
        model: DecPOMDP | None = None,
    ) -> None:
        self.num_envs = b = check_num_envs(num_envs)
        self.cfg = cfg = as_config(cfg, DPOMDPEnvConfig)
        self.model = m = model if model is not None else load_cached(cfg.path)
        self.autoreset = bool(autoreset)
        self.horizon = h = cfg.horizon
        s = m.n_states
        self._none = max(m.n_obs)  # the "no observation yet" slot
        self._dim = d = obs_dim(m, h)
        a_max = max(m.n_actions)
        self.spec = EnvSpec(
            agents=m.agents,
            obs_shape=(d,),
            state_dim=s + h,
            n_actions=a_max,
            has_action_mask=len(set(m.n_actions)) > 1,
            episode_metrics=EPISODE_METRICS,
            episode_limit=h,
        )
        self.buf = buf = VecBuffers.allocate(self.spec, b)
        for i, k in enumerate(m.n_actions):
            buf.action_mask[:, i, k:] = False
            buf.final_action_mask[:, i, k:] = False
        self._mask = buf.action_mask.copy()
        self._build_tables()
        self._rng = np.random.default_rng(seed)
        self._s = np.zeros(b, np.intp)  # hidden state
        self._t = np.zeros(b, np.intp)  # steps taken in the episode
        self._jo = np.full(b, -1, np.intp)  # last joint observation, -1 = none yet
        self._ret = np.zeros(b, np.float64)  # the episode's summed reward
        self._ended = np.zeros(b, bool)  # only used with autoreset=False
        self._u = np.zeros((2, b))
        self.reset(None)

    def _build_tables(self) -> None:
        """Sampling tables (flat rows of T by ``s * JA + ja``, of O by ``ja * S + s'``,
        cumulative), rewards, and where each one-hot goes in the flat output buffers."""
        m, b, h = self.model, self.num_envs, self.horizon
        n, s, d = m.n_agents, m.n_states, self._dim
        self._ja_n, self._s_n, self._jo_n = m.n_joint_actions, s, m.n_joint_obs
        self._t_cum = cumulative_rows(m.transition.reshape(s * self._ja_n, s))
        self._o_cum = cumulative_rows(m.observation.reshape(self._ja_n * s, self._jo_n))
        self._b0_cum = cumulative_rows(m.start)
        self._r_sa = m.reward.ravel().astype(np.float64)
        self._r_full = None if m.reward_full is None else m.reward_full.ravel()
        self._strides = m.action_strides()
        # slot of each agent's observation in its vector, by joint observation + 1 (row 0:
        # "none" at t = 0), then offsets of the env/agent rows in the flat buffers
        slots = np.full((self._jo_n + 1, n), self._none, np.intp)
        slots[1:] = m.obs_table()
        self._slots = slots
        self._obs_base = np.arange(b * n, dtype=np.intp).reshape(b, n) * d
        self._state_base = np.arange(b, dtype=np.intp) * (s + h)

    # ------------------------------------------------------------------ internals
    def _sample(self, cum: np.ndarray, u: np.ndarray) -> np.ndarray:
        """One outcome per row of ``cum`` [k, K] (cumulative) for uniforms ``u`` [k]."""
        return np.count_nonzero(cum <= u[:, None], axis=1)

    def _new_episodes(self, e: np.ndarray | slice, k: int) -> None:
        """Fresh episodes in envs ``e`` (``k`` of them): start state from b0, t = 0."""
        u = self._rng.random(k)
        self._s[e] = np.count_nonzero(self._b0_cum[None, :] <= u[:, None], axis=1)
        self._t[e] = 0
        self._jo[e] = -1
        self._ret[e] = 0.0

    def _write(self, s, t, jo, obs: np.ndarray, state: np.ndarray, obs_base, state_base
               ) -> None:
        """Observations and states of envs in (s, t, jo) into ``obs`` [k, N, D] and
        ``state`` [k, S + H] (contiguous)."""
        obs.fill(0.0)
        state.fill(0.0)
        flat_o, flat_s = obs.reshape(-1), state.reshape(-1)
        flat_o[obs_base + self._slots[jo + 1]] = 1.0
        flat_s[state_base + s] = 1.0
        live = t < self.horizon  # the final observation (t = H) has no step slot
        if live.all():
            flat_o[obs_base + (self._none + 1 + t)[:, None]] = 1.0
            flat_s[state_base + self._s_n + t] = 1.0
        elif live.any():
            flat_o[(obs_base + (self._none + 1 + t)[:, None])[live]] = 1.0
            flat_s[(state_base + self._s_n + t)[live]] = 1.0

    def _refresh(self) -> None:
        self._write(self._s, self._t, self._jo, self.buf.obs, self.buf.state,
                    self._obs_base, self._state_base)

    def _refresh_subset(self, e: np.ndarray) -> None:
        k = len(e)
        n, d = self.spec.n_agents, self._dim
        obs = np.empty((k, n, d), np.float32)
        state = np.empty((k, self.spec.state_dim), np.float32)
        self._write(self._s[e], self._t[e], self._jo[e], obs, state,
                    self._obs_base[:k], self._state_base[:k])
        self.buf.obs[e] = obs
        self.buf.state[e] = state

    # ------------------------------------------------------------------ VecEnv API
    def reset(self, seed: int | None = None) -> VecBuffers:
        """Start a new episode in every env; a ``seed`` reseeds the batch's generator."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._new_episodes(slice(None), self.num_envs)
        self._ended[:] = False
        self.buf.start_episodes()
        self._refresh()
        return self.buf

    def step(self, actions: np.ndarray) -> VecBuffers:
        """Apply ``actions`` [B, N] (agent i's in ``0..|A_i|-1``) to every env."""
        actions = check_batch_actions(actions, self.spec, self.num_envs, self._mask)
        if not self.autoreset and self._ended.any():
            raise RuntimeError(
                f"env {int(np.flatnonzero(self._ended)[0])} has ended (autoreset=False): "
                "call reset() before stepping again"
            )
        buf = self.buf
        ja = actions.astype(np.intp) @ self._strides
        sa = self._s * self._ja_n + ja
        u = self._u
        self._rng.random(out=u)
        s2 = self._sample(self._t_cum[sa], u[0])
        jo = self._sample(self._o_cum[ja * self._s_n + s2], u[1])
        if self._r_full is None:
            r = self._r_sa[sa]
        else:
            r = self._r_full[(sa * self._s_n + s2) * self._jo_n + jo]
        buf.reward[:] = r[:, None]
        self._ret += r
        self._s, self._jo = s2, jo
        self._t += 1
        done = self._t >= self.horizon
        np.copyto(buf.terminated, done)
        buf.truncated[:] = False
        self._refresh()
        if done.any():
            self._end_episodes(np.flatnonzero(done), bool(done.all()))
        return buf

    def _end_episodes(self, e: np.ndarray, every: bool) -> None:
        """Envs ``e`` ended this step: final observation, statistics, then a new episode
        (auto-reset) or the ended flag."""
        buf = self.buf
        if every:
            np.copyto(buf.final_obs, buf.obs)
            np.copyto(buf.final_state, buf.state)
            buf.episode["team_return"][:] = self._ret
        else:
            buf.final_obs[e] = buf.obs[e]
            buf.final_state[e] = buf.state[e]
            buf.episode["team_return"][e] = self._ret[e]
        if self.autoreset:
            if every:
                self._new_episodes(slice(None), self.num_envs)
                self._refresh()
            else:
                self._new_episodes(e, len(e))
                self._refresh_subset(e)
        else:
            self._ended[e] = True
            buf.alive[e] = False

    def close(self) -> None:
        """Nothing to release."""

    _STATE_ARRAYS = ("_s", "_t", "_jo", "_ret", "_ended")

    def _config(self) -> dict[str, Any]:
        return {"problem": self.cfg.problem, "horizon": self.horizon,
                "model": self.model.digest()}

    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue exactly (see ``ResumableVecEnv``)."""
        return save_state(self, self._config(), rng=self._rng.bit_generator.state,
                          arrays={k: getattr(self, k).copy() for k in self._STATE_ARRAYS})

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_state` output into this env (same config and num_envs)."""
        load_state(self, "dpomdp", state, self._config())
        for k in self._STATE_ARRAYS:
            setattr(self, k, state["arrays"][k].copy())
        self._rng.bit_generator.state = state["rng"]

    # ------------------------------------------------------------------ inspection
    def hidden_states(self) -> np.ndarray:
        """``[B]`` the current hidden state of every env."""
        return self._s.copy()

    def observation_indices(self) -> np.ndarray:
        """``[B, N]`` every agent's last own observation (-1 before the first step)."""
        out = self._slots[self._jo + 1].copy()
        out[self._jo < 0] = -1
        return out

    def steps(self) -> np.ndarray:
        """``[B]`` the steps taken in the current episode of every env."""
        return self._t.copy()

    def set_hidden(self, states: Any, t: Any = 0, joint_obs: Any = -1) -> VecBuffers:
        """Place every env in hidden state ``states`` ([B] or a scalar) at step ``t``
        (``0..H-1``) after last joint observation ``joint_obs`` (-1 = none, only at t = 0)
        and refresh the buffers; episode returns restart at 0 (for tests)."""
        b, h = self.num_envs, self.horizon
        s = np.broadcast_to(np.asarray(states), (b,))
        t = np.broadcast_to(np.asarray(t), (b,))
        jo = np.broadcast_to(np.asarray(joint_obs), (b,))
        for name, arr, lo, hi in (("states", s, 0, self._s_n), ("t", t, 0, h),
                                  ("joint_obs", jo, -1, self._jo_n)):
            if not np.issubdtype(arr.dtype, np.integer) or ((arr < lo) | (arr >= hi)).any():
                raise ValueError(f"{name} must be ints in {lo}..{hi - 1}, got {arr.tolist()}")
        if ((jo < 0) != (t == 0)).any():
            raise ValueError("joint_obs must be -1 exactly where t = 0")
        self._s[:], self._t[:], self._jo[:] = s, t, jo
        self._ret[:] = 0.0
        self._ended[:] = False
        self.buf.start_episodes()
        self._refresh()
        return self.buf
