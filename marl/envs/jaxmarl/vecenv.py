"""The JaxMARL adapter proper: :class:`JaxMarlVecEnv`, B copies of one env stepped by
one jitted, vmapped function (see :mod:`marl.envs.jaxmarl`)."""


from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from marl.envs.base import EnvSpec, VecBuffers, buffers_state, check_actions, restore_buffers
from marl.envs.jaxmarl.loading import SMAX_METRICS, JaxMarlEnvConfig, make_jaxmarl_env


class JaxMarlVecEnv:
    """``num_envs`` copies of one JaxMARL env stepped by one jitted, vmapped function."""

    def __init__(self, cfg: JaxMarlEnvConfig | None = None, num_envs: int = 1,
                 seed: int | None = None) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) \
                or num_envs < 1:
            raise ValueError(f"num_envs={num_envs!r} is invalid: must be an int >= 1")
        self.cfg = cfg = cfg if cfg is not None else JaxMarlEnvConfig()
        self.num_envs = b = int(num_envs)
        self.env = env = make_jaxmarl_env(cfg)
        import jax
        import jax.numpy as jnp

        self._jax, self._jnp = jax, jnp
        self.agents = agents = tuple(env.agents)
        n_actions = {int(env.action_space(a).n) if hasattr(env.action_space(a), "n") else None
                     for a in agents}
        if len(n_actions) != 1 or None in n_actions:
            raise ValueError(f"JaxMARL env {cfg.id!r}: every agent needs a Discrete action "
                             "space of one size (pick a discrete action_type in env.kwargs)")
        obs0, st0 = env.reset(jax.random.PRNGKey(0))
        shapes = {tuple(np.shape(obs0[a])) for a in agents}
        if len(shapes) != 1:
            raise ValueError(f"JaxMARL env {cfg.id!r}: agents' observations have different "
                             f"shapes {sorted(shapes)}; the adapter needs one shape")
        self._smax = hasattr(self._core(st0), "unit_alive")
        self._world_state = "world_state" in obs0
        self._state_scale = self._smax_state_scale(np.size(obs0["world_state"])) \
            if self._smax and self._world_state and cfg.scale_state else None
        self.spec = self._make_spec(int(np.prod(shapes.pop())), n_actions.pop(), obs0, st0)
        # SMAX: "stop" is the last movement action; others: 0 (MPE's no-op).
        self._noop = int(env.num_movement_actions - 1) if self._smax else 0
        self.buf = VecBuffers.allocate(self.spec, b)
        self._step_fns: dict[bool, Any] = {}
        self._reset_fn = jax.jit(jax.vmap(self._reset_one))
        self._final0 = None  # env index 0's pre-reset state (only when rendering)
        self._render_index: int | None = None
        if self._smax or hasattr(st0, "p_pos"):
            self.render_rgb = self._render_rgb
        self.reset(seed)

    def _make_spec(self, obs_dim: int, n_actions: int, obs0: Any, st0: Any) -> EnvSpec:
        """The :class:`EnvSpec` of the env just reset (``obs0``, ``st0``)."""
        env = self.env
        try:
            env.get_avail_actions(st0)
            self._has_mask = True
        except NotImplementedError:
            self._has_mask = False
        state_dim = int(np.size(obs0["world_state"])) if self._world_state \
            else obs_dim * len(self.agents)
        return EnvSpec(
            agents=self.agents,
            obs_shape=(obs_dim,),
            state_dim=state_dim,
            n_actions=n_actions,
            has_action_mask=self._has_mask,
            state_is_concat_obs=not self._world_state,
            episode_metrics=SMAX_METRICS if self._smax else (),
            success_metric="win" if self._smax else None,
            episode_limit=getattr(env, "max_steps", None),
        )

    # ------------------------------------------------------------------ per-env JAX code
    @staticmethod
    def _core(st):
        """The env state with the units: HeuristicEnemySMAX wraps SMAX's state."""
        return getattr(st, "state", st)

    def _smax_state_scale(self, size: int) -> tuple[Any, Any, Any]:
        """(low, high, factor) ``[S]`` of SMAX's world state: the state is
        ``clip(s, low, high) * factor``. Layout (JaxMARL ``get_world_state``): per unit
        [health, x, y, weapon cooldown, type bits], then every unit's team, then its type."""
        jnp = self._jnp
        core = getattr(self.env, "_env", self.env)  # HeuristicEnemySMAX wraps SMAX
        n_units, per_unit = core.num_agents, len(core.own_features)
        if n_units * (per_unit + 2) != size:
            raise ValueError(f"SMAX world_state has {size} features, expected "
                             f"{n_units} units x ({per_unit} + 2): JaxMARL's layout changed; "
                             "set env.scale_state=false")
        longest = float(np.max(np.asarray(core.unit_type_weapon_cooldowns)))
        unit_low = np.full(per_unit, -np.inf, np.float32)
        unit_high = np.full(per_unit, np.inf, np.float32)
        unit_factor = np.ones(per_unit, np.float32)
        unit_factor[1:3] = 1.0 / core.map_width, 1.0 / core.map_height
        unit_low[3], unit_high[3], unit_factor[3] = 0.0, longest, 1.0 / longest
        low = np.concatenate([np.tile(unit_low, n_units), np.full(2 * n_units, -np.inf)])
        high = np.concatenate([np.tile(unit_high, n_units), np.full(2 * n_units, np.inf)])
        factor = np.concatenate([np.tile(unit_factor, n_units), np.ones(n_units),
                                 np.full(n_units, 1.0 / core.unit_type_bits)])
        return (jnp.asarray(low, jnp.float32), jnp.asarray(high, jnp.float32),
                jnp.asarray(factor, jnp.float32))

    def _observe(self, obs, st):
        """obs [N, O], state [S], mask [N, A] bool of one env's JAX observation dict/state."""
        jnp = self._jnp
        o = jnp.stack([jnp.ravel(obs[a]) for a in self.agents]).astype(jnp.float32)
        s = obs["world_state"].ravel().astype(jnp.float32) if self._world_state else o.ravel()
        if self._state_scale is not None:
            low, high, factor = self._state_scale
            s = jnp.clip(s, low, high) * factor
        if self._has_mask:
            avail = self.env.get_avail_actions(st)
            m = jnp.stack([avail[a] for a in self.agents]).astype(bool)
        else:
            m = jnp.ones((len(self.agents), self.spec.n_actions), bool)
        return o, s, m

    def _reset_one(self, key):
        jax, jnp = self._jax, self._jnp
        key, k_reset = jax.random.split(key)
        obs, st = self.env.reset(k_reset)
        o, s, m = self._observe(obs, st)
        return key, st, jnp.ones(len(self.agents), bool), o, s, m

    def _episode_stats(self, st, done):
        jnp = self._jnp
        if not self._smax:
            return jnp.zeros(0, jnp.float32), done
        core = self._core(st)
        n_allies = self.env.num_allies
        allies, enemies = core.unit_alive[:n_allies], core.unit_alive[n_allies:]
        allies_dead, enemies_dead = ~allies.any(), ~enemies.any()
        win = enemies_dead & ~allies_dead
        stats = jnp.stack([win, (~enemies).mean(), (~allies).mean()]).astype(jnp.float32)
        return stats, allies_dead | enemies_dead

    def _step_one(self, key, st, alive, actions):
        jax, jnp = self._jax, self._jnp
        key, k_step, k_reset = jax.random.split(key, 3)
        actions = jnp.where(alive, actions, self._noop)
        obs, st_end, rew, dones, _ = self.env.step_env(
            k_step, st, {a: actions[i] for i, a in enumerate(self.agents)})
        done = dones["__all__"]
        o, s, m = self._observe(obs, st_end)
        alive_end = ~jnp.stack([dones[a] for a in self.agents])
        m = m | ~alive_end[:, None]
        stats, wiped_out = self._episode_stats(st_end, done)
        if self._smax:
            term = done & wiped_out
        elif hasattr(self.env, "max_steps"):
            term = done & (self._core(st_end).step < self.env.max_steps)
        else:
            term = done
        reward = jnp.stack([rew[a] for a in self.agents]).astype(jnp.float32)
        obs_r, st_r = self.env.reset(k_reset)
        o_r, s_r, m_r = self._observe(obs_r, st_r)

        def pick(x, y):
            return jnp.where(done, x, y)

        st_next = jax.tree.map(pick, st_r, st_end)
        out = (pick(o_r, o), pick(s_r, s), reward, term, done & ~term, pick(m_r, m),
               pick(jnp.ones_like(alive_end), alive_end), o, s, m, stats, alive_end)
        return key, st_next, out[6], out, st_end

    def _batched_step(self, keep_final: int | None):
        jax = self._jax
        step = jax.vmap(self._step_one)

        def run(keys, states, alive, actions):
            keys, states, alive, out, st_end = step(keys, states, alive, actions)
            final = None if keep_final is None else jax.tree.map(lambda x: x[keep_final],
                                                                   st_end)
            return keys, states, alive, out, final

        return jax.jit(run, donate_argnums=(0, 1, 2))

    # ------------------------------------------------------------------ VecEnv API
    def reset(self, seed: int | None = None) -> VecBuffers:
        """Start a new episode in every env; ``seed`` (or fresh entropy) seeds the batch."""
        jax = self._jax
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        keys = jax.random.split(jax.random.PRNGKey(int(seed)), self.num_envs)
        self._keys, self._states, self._alive, o, s, m = self._reset_fn(keys)
        buf = self.buf
        np.copyto(buf.obs, np.asarray(o))
        np.copyto(buf.state, np.asarray(s))
        np.copyto(buf.action_mask, np.asarray(m))
        buf.alive[:] = True
        buf.reward[:] = 0.0
        buf.terminated[:] = False
        buf.truncated[:] = False
        self._final0 = None
        return buf

    def step(self, actions: np.ndarray) -> VecBuffers:
        """Apply ``actions`` [B, N] to every env, auto-resetting ended ones."""
        actions = np.asarray(actions)
        check_actions(actions, self.spec, self.buf.action_mask)
        if actions.shape[0] != self.num_envs:
            raise ValueError(f"actions must have shape [{self.num_envs}, {self.spec.n_agents}]"
                             f", got {tuple(actions.shape)}")
        fn = self._step_fns.get(self._render_index)
        if fn is None:
            fn = self._step_fns[self._render_index] = self._batched_step(self._render_index)
        self._keys, self._states, self._alive, out, self._final0 = fn(
            self._keys, self._states, self._alive, actions.astype(np.int32, copy=False))
        (obs, state, reward, term, trunc, mask, alive,
         f_obs, f_state, f_mask, stats, f_alive) = self._jax.device_get(out)
        buf = self.buf
        np.copyto(buf.obs, obs)
        np.copyto(buf.state, state)
        np.copyto(buf.reward, reward)
        np.copyto(buf.terminated, term)
        np.copyto(buf.truncated, trunc)
        np.copyto(buf.action_mask, mask)
        np.copyto(buf.alive, alive)
        ended = term | trunc
        if ended.any():
            e = np.flatnonzero(ended)
            buf.final_obs[e] = f_obs[e]
            buf.final_state[e] = f_state[e]
            buf.final_action_mask[e] = f_mask[e]
            buf.final_alive[e] = f_alive[e]  # a unit that died in the last step is out
            for i, k in enumerate(self.spec.episode_metrics):
                buf.episode[k][e] = stats[e, i]
        return buf

    def close(self) -> None:
        """Nothing to release."""

    # ------------------------------------------------------------------ exact resume
    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue exactly (see ``ResumableVecEnv``)."""
        jax = self._jax
        return {
            "num_envs": self.num_envs,
            "config": dataclasses.asdict(self.cfg),
            "keys": np.array(self._keys),
            "alive": np.array(self._alive),
            "leaves": [np.array(x) for x in jax.tree.leaves(self._states)],
            "buf": buffers_state(self.buf),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_state` output into this env (same config and num_envs)."""
        jax, jnp = self._jax, self._jnp
        mine = dataclasses.asdict(self.cfg)
        if state["num_envs"] != self.num_envs or state["config"] != mine:
            diff = sorted(k for k in mine if mine[k] != state["config"].get(k))
            raise ValueError(
                f"saved JaxMARL env state is for num_envs={state['num_envs']} and a config "
                f"differing in {diff or 'nothing'}; this env has num_envs={self.num_envs}")
        leaves, treedef = jax.tree.flatten(self._states)
        saved = state["leaves"]
        if len(saved) != len(leaves) or any(
                np.shape(s) != x.shape or np.asarray(s).dtype != x.dtype
                for s, x in zip(saved, leaves, strict=True)):
            raise ValueError("saved JaxMARL env state does not match this env's state layout "
                             "(another jaxmarl version or env?)")
        self._states = jax.tree.unflatten(treedef, [jnp.array(s) for s in saved])
        self._keys = jnp.array(state["keys"])
        self._alive = jnp.array(state["alive"])
        self._final0 = None
        restore_buffers(self.buf, state["buf"])

    # ------------------------------------------------------------------ rendering
    def _render_rgb(self, env_index: int = 0, final: bool = False) -> np.ndarray:
        """uint8 ``[H, W, 3]`` image of env ``env_index``; ``final=True``: the last
        situation of its episode that just ended (the env itself has been reset)."""
        if self._render_index != env_index:
            self._render_index = env_index  # the next step also returns its final state
            self._final0 = None
        if final:
            if self._final0 is None:
                raise RuntimeError("no ended episode to render: step the env first")
            st = self._final0
        else:
            st = self._jax.tree.map(lambda x: x[env_index], self._states)
        return self._draw(self._core(st))

    def _draw(self, core, size: int = 256) -> np.ndarray:
        img = np.full((size, size, 3), 235, np.uint8)
        yy, xx = np.mgrid[0:size, 0:size]
        if self._smax:
            env = self.env
            pos = np.asarray(core.unit_positions)
            scale = size / max(env.map_width, env.map_height)
            types = np.asarray(core.unit_types)
            health = np.asarray(core.unit_health) / np.asarray(env.unit_type_health)[types]
            radius = np.asarray(env.unit_type_radiuses)[types] * scale + 2
            alive = np.asarray(core.unit_alive)
            teams = np.asarray(core.unit_teams)
            colours = np.array([[40, 110, 230], [230, 70, 40]])
            units = [(pos[i], radius[i], colours[int(teams[i])] * (0.4 + 0.6 * health[i]))
                     for i in range(len(pos)) if alive[i]]
            to_px = scale
            offset = np.zeros(2)
        else:
            pos = np.asarray(core.p_pos)
            n = len(self.agents)
            span = max(2.0, float(np.abs(pos).max()) + 0.2)
            to_px, offset = size / (2 * span), np.full(2, span)
            units = [(p, 6 if i < n else 4, (40, 110, 230) if i < n else (120, 120, 120))
                     for i, p in enumerate(pos)]
        for p, r, colour in units:
            cx, cy = (np.asarray(p) + offset) * to_px
            img[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = np.clip(colour, 0, 255)
        return img
