"""The batched numpy core of box pushing: the rules of the package docstring
(:mod:`marl.envs.boxpush`) over B envs at once, no Python loop over envs.

The step rules live here; where pieces start (drawn or placed) is
:mod:`marl.envs.boxpush.placement`, the grid's look-up tables and the buffer views they
fill are :mod:`marl.envs.boxpush.tables`."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from marl.envs.base import EnvSpec, VecBuffers, load_state, save_state
from marl.envs.boxpush.metrics import credit_metrics
from marl.envs.boxpush.placement import draw_starts, placed_cells, xy_of
from marl.envs.boxpush.render import render_rgb
from marl.envs.boxpush.rules import (
    AGENTS,
    EPISODE_METRICS,
    N_ACTIONS,
    OBS_DIM,
    STATE_DIM,
)
from marl.envs.boxpush.tables import feature_views, grid_tables
from marl.envs.checks import as_config, check_batch_actions, check_num_envs
from marl.envs.configs import BoxPushConfig


class BoxPushCore:
    """``num_envs`` box-pushing envs stepped at once in numpy (a :class:`VecEnv`).

    Cells are flat indices ``y * W + x``. Robots live agent-major in ``[2, B]`` and box,
    hole and step counter in ``[B]`` arrays, all contiguous, so every rule is a few table
    look-ups and comparisons over the batch. Observations and states are gathered from
    precomputed per-cell tables straight into the output buffers.

    With ``autoreset=True`` (the runner's case) an env whose episode ends starts a new one
    in the same ``step``; with ``autoreset=False`` it is left in its final state,
    ``buf.alive`` turns False for it and stepping the batch again raises RuntimeError
    until ``reset`` (or ``set_positions``).
    """

    def __init__(
        self,
        cfg: BoxPushConfig | None = None,
        num_envs: int = 1,
        seed: int | None = None,
        autoreset: bool = True,
    ) -> None:
        self.num_envs = b = check_num_envs(num_envs)
        self.cfg = cfg = as_config(cfg, BoxPushConfig)
        self.autoreset = bool(autoreset)
        self.spec = self._make_spec(cfg)
        self.buf = VecBuffers.allocate(self.spec, b)
        self.width, self.height = w, h = cfg.width, cfg.height
        self.n_cells = w * h
        fixed = cfg.fixed_hole
        self._fixed_hole = None if fixed is None else fixed[1] * w + fixed[0]
        self._build_tables()
        self._heavy = cfg.box_weight >= 2
        self._solo_p = float(cfg.solo_push_prob)
        self._max_steps = cfg.max_steps
        self._inv_max = np.float32(1.0 / cfg.max_steps)
        self._penalty = np.float32(cfg.step_penalty)

        self._rng = np.random.default_rng(seed)
        self._allocate(b)
        self._obs_views = feature_views(self.buf.obs, self.buf.state)
        self.reset(None)

    @staticmethod
    def _make_spec(cfg: BoxPushConfig) -> EnvSpec:
        return EnvSpec(
            agents=AGENTS,
            obs_shape=(OBS_DIM,),
            state_dim=STATE_DIM,
            n_actions=N_ACTIONS,
            episode_metrics=EPISODE_METRICS,
            success_metric="success",
            episode_limit=cfg.max_steps,
            credit_metrics=credit_metrics,
        )

    def _allocate(self, b: int) -> None:
        """The per-env arrays of ``b`` envs (their values come from ``reset``)."""
        self._rob = np.zeros((2, b), np.intp)  # robot cells, agent-major
        self._box = np.zeros(b, np.intp)
        self._hole = np.zeros(b, np.intp)
        self._t = np.zeros(b, np.intp)
        # Episode counters, agent-major: pushes, push_attempts, idle.
        self._pushes = np.zeros((2, b), np.int32)
        self._attempts = np.zeros((2, b), np.int32)
        self._idle = np.zeros((2, b), np.int32)
        self._ended = np.zeros(b, bool)  # only used with autoreset=False
        # robots [2, B], box [B], hole [B] cells at the end of each env's last episode
        self._final_cells = (np.zeros((2, b), np.intp), np.zeros(b, np.intp),
                             np.zeros(b, np.intp))
        self._coin = np.zeros(b)  # uniform draws for solo pushes

    def _build_tables(self) -> None:
        """The grid's look-up tables (:mod:`marl.envs.boxpush.tables`) as attributes."""
        tab = grid_tables(self.width, self.height, self.cfg.view_radius, self.cfg.hole,
                          self._fixed_hole)
        self._move, self._xy, self._rel = tab.move, tab.xy, tab.rel
        self._xy_v, self._rel_v = tab.xy_v, tab.rel_v
        self._box_table, self._box_count = tab.box_table, tab.box_count

    # ------------------------------------------------------------------ internals
    def _new_episodes(self, idx: np.ndarray | slice, k: int) -> None:
        """Draw fresh positions for the envs ``idx`` (``k`` of them) and zero their stats."""
        robots, box, hole = draw_starts(self._rng, k, self.n_cells, self._fixed_hole,
                                        self._box_table, self._box_count)
        self._place(idx, robots, box, hole, 0)

    def _place(self, idx: np.ndarray | slice, robots, box, hole, t) -> None:
        """Put the envs ``idx`` at these cells and step counter, their stats zeroed."""
        self._rob[:, idx] = robots
        self._box[idx] = box
        self._hole[idx] = hole
        self._t[idx] = t
        self._pushes[:, idx] = 0
        self._attempts[:, idx] = 0
        self._idle[:, idx] = 0

    def _observe(self, rob, box, hole, t, views, state) -> None:
        """Gather observations and states of envs with these cells into ``views``/``state``."""
        own, o_box, o_hole, o_other, s_xy = views
        xy, rel = self._xy_v, self._rel_v
        base = rob * self.n_cells
        np.take(xy, rob, out=own)
        np.take(rel, base + box, out=o_box)
        np.take(rel, base + hole, out=o_hole)
        np.take(rel, base + rob[::-1], out=o_other)
        np.take(xy, rob, out=s_xy[:, :2].T)
        np.take(xy, box, out=s_xy[:, 2])
        np.take(xy, hole, out=s_xy[:, 3])
        np.multiply(t, self._inv_max, out=state[:, 8], casting="unsafe")

    def _observe_subset(self, e: np.ndarray) -> None:
        k = len(e)
        obs = np.empty((k, 2, OBS_DIM), np.float32)
        state = np.empty((k, STATE_DIM), np.float32)
        rob = self._rob[:, e]
        views = feature_views(obs, state)
        self._observe(rob, self._box[e], self._hole[e], self._t[e], views, state)
        self.buf.obs[e] = obs
        self.buf.state[e] = state

    def _refresh(self) -> None:
        self._observe(self._rob, self._box, self._hole, self._t, self._obs_views, self.buf.state)

    # ------------------------------------------------------------------ VecEnv API
    def reset(self, seed: int | None = None) -> VecBuffers:
        """Start a new episode in every env; a ``seed`` reseeds the batch's generator."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._new_episodes(slice(None), self.num_envs)
        self._clear_flags()
        return self.buf

    def _clear_flags(self) -> None:
        buf = self.buf
        self._ended[:] = False
        buf.start_episodes()
        self._refresh()

    def step(self, actions: np.ndarray) -> VecBuffers:
        """Apply ``actions`` [B, 2] (ints in 0..4) to every env; see the module docstring."""
        actions = check_batch_actions(actions, self.spec, self.num_envs)
        if not self.autoreset and self._ended.any():
            raise RuntimeError(
                f"env {int(np.flatnonzero(self._ended)[0])} has ended (autoreset=False): "
                "call reset() before stepping again"
            )
        act = actions.T.astype(np.intp)  # [2, B], contiguous
        rob = self._rob
        # Where every robot tries to go (its own cell when the move hits a wall).
        tgt = self._move.take(rob * N_ACTIONS + act)
        push = tgt == self._box
        ok, new_box = self._box_moves(act, push)
        # Everyone whose target is the box's new cell stays put: pushers of a box that did
        # not move, and walkers into it. Pushers of a moved box follow into its old cell.
        new_rob = np.where(tgt == new_box, rob, tgt)
        self._attempts += push
        push &= ok
        self._pushes += push
        self._idle += new_rob == rob
        self._rob, self._box = new_rob, new_box
        done, trunc = self._advance_time(new_box)
        ended = done | trunc
        if ended.any():
            self._end_episodes(np.flatnonzero(ended), done)
        return self.buf

    def _box_moves(self, act: np.ndarray, push: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The box rule over the batch: (moved ``[B]``, the box's new cell ``[B]``).

        The box moves iff someone pushes, the destination is inside the grid, pushes do
        not conflict, no non-pushing robot stands on the destination, and the pushers are
        strong enough (or lucky)."""
        box, rob = self._box, self._rob
        a0, a1 = act
        p0, p1 = push
        both = p0 & p1
        dest = self._move.take(box * N_ACTIONS + np.where(p0, a0, a1))
        ok = (p0 | p1) & (dest != box)
        ok &= ~(both & (a0 != a1))
        # A robot on the destination cannot be pushing in the box's direction d (it would
        # stand at box - d), and a pusher in another direction makes ``ok`` False anyway.
        blocked = rob == dest
        ok &= ~(blocked[0] | blocked[1])
        if self._heavy and self._solo_p < 1.0:
            if self._solo_p <= 0.0:
                ok &= both
            else:
                self._rng.random(out=self._coin)
                ok &= both | (self._coin < self._solo_p)
        return ok, np.where(ok, dest, box)

    def _advance_time(self, new_box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Count the step, write rewards and episode ends, refresh the observations;
        returns (terminated, truncated) ``[B]``."""
        buf = self.buf
        self._t += 1
        done = new_box == self._hole
        np.subtract(done[:, None], self._penalty, out=buf.reward)
        np.copyto(buf.terminated, done)
        trunc = buf.truncated
        np.greater_equal(self._t, self._max_steps, out=trunc)
        trunc &= ~done
        self._refresh()
        return done, trunc

    def _end_episodes(self, e: np.ndarray, done: np.ndarray) -> None:
        """Envs ``e`` ended this step: final observation, episode statistics, and a new
        episode (auto-reset) or the ended flag."""
        buf = self.buf
        buf.final_obs[e] = buf.obs[e]
        buf.final_state[e] = buf.state[e]
        self._final_cells[0][:, e] = self._rob[:, e]
        self._final_cells[1][e] = self._box[e]
        self._final_cells[2][e] = self._hole[e]
        ep = buf.episode
        ep["success"][e] = done[e]
        for i, agent in enumerate(AGENTS):
            ep[f"pushes/{agent}"][e] = self._pushes[i, e]
            ep[f"push_attempts/{agent}"][e] = self._attempts[i, e]
            ep[f"idle/{agent}"][e] = self._idle[i, e]
        if self.autoreset:
            self._new_episodes(e, len(e))
            self._observe_subset(e)
        else:
            self._ended[e] = True
            buf.alive[e] = False

    def close(self) -> None:
        """Nothing to release."""

    _STATE_ARRAYS = ("_rob", "_box", "_hole", "_t", "_pushes", "_attempts", "_idle", "_ended")

    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue exactly (see ``ResumableVecEnv``)."""
        return save_state(self, dataclasses.asdict(self.cfg), rng=self._rng.bit_generator.state,
                          arrays={k: getattr(self, k).copy() for k in self._STATE_ARRAYS},
                          final_cells=[c.copy() for c in self._final_cells])

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_state` output into this env (same config and num_envs)."""
        load_state(self, "box-pushing", state, dataclasses.asdict(self.cfg))
        for k in self._STATE_ARRAYS:
            setattr(self, k, state["arrays"][k].copy())
        self._final_cells = tuple(c.copy() for c in state["final_cells"])
        self._rng.bit_generator.state = state["rng"]

    def render_rgb(self, env_index: int = 0, final: bool = False) -> np.ndarray:
        """uint8 ``[H, W, 3]`` image of env ``env_index``; ``final=True``: the last
        situation of its episode that just ended (the env itself has been reset)."""
        w = self.width
        rob, box, hole = self._final_cells if final else (self._rob, self._box, self._hole)

        def xy(c) -> tuple[int, int]:
            return int(c % w), int(c // w)

        robots = [xy(rob[i, env_index]) for i in range(2)]
        return render_rgb(w, self.height, robots, xy(box[env_index]), xy(hole[env_index]))

    # ------------------------------------------------------------------ test helpers
    def set_positions(
        self,
        robots: np.ndarray,
        box: np.ndarray,
        hole: np.ndarray,
        t: int | np.ndarray = 0,
    ) -> VecBuffers:
        """Place everything explicitly and refresh ``buf.obs`` / ``buf.state``.

        ``robots`` [B, 2, 2], ``box`` [B, 2], ``hole`` [B, 2] hold ``(x, y)`` cells; ``t``
        (scalar or [B]) is the step counter, in ``0..max_steps-1``. Episode statistics are
        zeroed and ended envs become live again. Raises ValueError for cells outside the
        grid, a robot on the box or the box already in the hole (the checks:
        :func:`marl.envs.boxpush.placement.placed_cells`).
        """
        cells = placed_cells(robots, box, hole, t, self.num_envs, self.width, self.height,
                             self._max_steps)
        self._place(slice(None), *cells)
        self._clear_flags()
        return self.buf

    def positions(self) -> dict[str, np.ndarray]:
        """Current ``robots`` [B, 2, 2], ``box`` [B, 2], ``hole`` [B, 2] as (x, y), and ``t``."""
        w = self.width
        return {
            "robots": xy_of(self._rob.T, w),
            "box": xy_of(self._box, w),
            "hole": xy_of(self._hole, w),
            "t": self._t.copy(),
        }

    def counts(self, env: int = 0) -> dict[str, dict[str, int]]:
        """Running statistics of the current episode of env ``env``, per agent."""
        return {
            agent: {
                "pushes": int(self._pushes[i, env]),
                "push_attempts": int(self._attempts[i, env]),
                "idle": int(self._idle[i, env]),
            }
            for i, agent in enumerate(AGENTS)
        }
