"""JaxMARL envs (SMAX, JAX MPE, ...) as one batched :class:`~marl.envs.base.VecEnv`.

Which env. ``id`` is a JaxMARL registry name (``jaxmarl.registered_envs``), e.g.
``HeuristicEnemySMAX`` (SMAX against the built-in heuristic enemy: the COMA paper's
StarCraft micromanagement setting) or ``MPE_simple_spread_v3``. ``kwargs`` go to
``jaxmarl.make``; a key the env's constructor chain does not name fails at start (JaxMARL's
MPE constructors would silently swallow it). ``scenario`` names a SMAX map (``3m``,
``2s3z``, ``5m_vs_6m``, ...), turned into JaxMARL's ``Scenario`` with
``map_name_to_scenario`` (a Scenario object cannot be written in YAML).

One jitted core. ``step`` is ONE ``jax.jit`` of a ``jax.vmap`` over the B envs of: the
env's ``step_env``, the stacked observations, action masks and global state of the
result, the episode statistics of the (possibly final) state, a fresh ``reset`` and the
auto-reset select between the two (as JaxMARL's own ``step`` does). No Python loop over
envs or agents runs per step; the outputs come back to numpy with one ``device_get`` and
are copied into the preallocated :class:`~marl.envs.base.VecBuffers`. The JAX state
pytree, the per-env PRNG keys ``[B, 2]`` and the alive flags stay on the device between
steps (donated to the next step, so XLA reuses their memory).

What the runner sees:

* agents: ``env.agents`` (SMAX: the allies ``ally_0..``; the enemy is part of the env).
  Every agent needs a ``Discrete`` action space of one size A and observations of one
  shape (flattened to ``(O,)``, float32).
* action masks from ``env.get_avail_actions`` where the env defines it (SMAX); else all
  True (``has_action_mask=False``). Rows of agents that are not alive are all True.
* alive: ``not dones[agent]`` of the last step (SMAX: dead units). A dead agent's action
  is replaced by the env's no-op (SMAX: stop) before it reaches the env.
* state: ``obs["world_state"]`` where the env returns one (SMAX), else the concatenated
  observations (``state_is_concat_obs=True``). SMAX's world state carries raw map
  positions (0-32), weapon cooldowns that keep falling below zero while a unit holds
  fire (seen at -13) and integer unit types beside normalised health; with
  ``scale_state`` (the default) positions are divided by the map's width and height,
  cooldowns clipped to ``[0, longest cooldown]`` and divided by it (below zero means
  "ready", as at zero) and types divided by the number of types, so every feature is in
  [0, 1]. A deviation from JaxMARL's raw state, for the critics and the QMIX mixer
  (input conditioning; the falling cooldown is not information). On coma_smax_3m it
  changed nothing measurable (experiments/smax/README.md); ``scale_state=false`` gives
  JaxMARL's state as it is.
* terminated vs truncated: SMAX terminates when one side is wiped out and truncates at
  ``max_steps`` otherwise (a battle won on the last step is terminated). Other envs: the
  episode is truncated when ``state.step >= env.max_steps`` (MPE's only end) and
  terminated for any other end.
* episode statistics (SMAX): ``win`` (all enemies dead and at least one ally alive; the
  task's success metric, so it is reported as ``train/success_rate`` and
  ``eval/success_rate``), ``enemies_killed`` and ``allies_lost`` (fractions).
* rendering: ``render_rgb(env_index, final=False)`` for SMAX (units as discs, allies
  blue, enemies red, brightness = health) and MPE (agents blue, landmarks grey).
  JaxMARL's own renderers are matplotlib animations of whole state sequences, too slow
  and of the wrong shape for a frame-at-a-time recorder. The first call recompiles the
  step once so that it also returns env ``env_index``'s pre-reset state (for the final
  frame); training envs never pay for it.

Threads. JAX runs on the CPU (``JAX_PLATFORMS=cpu``) and, with ``xla_single_thread``
(the default), with XLA's intra-op thread pool off
(``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``). Both are set in
the environment before the first ``import jax`` in the process and cannot be changed
afterwards. Measured (experiments/smax/bench.py) on the 2-core machine shared with other
jobs: see experiments/smax/README.md.

Compilation cache: jitted steps are cached on disk (JAX's persistent compilation cache)
in ``$MARL_JAX_CACHE`` (default ``~/.cache/marl/jax``; set it empty to turn the cache
off), unless the process configured its own cache first.

Exact resume: ``get_state`` copies the state pytree's leaves, the keys and the alive
flags to numpy, with the buffers the runner reads; ``set_state`` puts them back, so the
continuation is bit-identical (tests/test_jaxmarl.py).

Nothing here imports jax at module import: the config dataclass is needed by the env
registry (and so by every run) without jax installed.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from marl.envs.base import EnvSpec, VecBuffers, buffers_state, check_actions, restore_buffers

INSTALL_HINT = 'pip install "marl[jax]" (in a checkout: pip install -e ".[jax]")'
XLA_SINGLE_THREAD_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
CACHE_ENV = "MARL_JAX_CACHE"
CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "marl", "jax")
SMAX_IDS = ("SMAX", "HeuristicEnemySMAX", "LearnedPolicyEnemySMAX")
SMAX_METRICS = ("win", "enemies_killed", "allies_lost")


def _plain(x: Any) -> Any:
    """``x`` with OmegaConf containers and mappings turned into plain dicts and lists."""
    if type(x).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(x, resolve=True)
    if isinstance(x, Mapping):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


@dataclass
class JaxMarlEnvConfig:
    """Any JaxMARL env through the batched JAX adapter (see the module docstring)."""

    name: str = "jaxmarl"
    """Registry key of the env."""
    id: str = "HeuristicEnemySMAX"
    """JaxMARL registry name (jaxmarl.registered_envs), e.g. MPE_simple_spread_v3."""
    scenario: str | None = None
    """SMAX map name (3m, 2s3z, 5m_vs_6m, ...); only for the SMAX ids; null = none."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of jaxmarl.make, e.g. {max_steps: 25, local_ratio: 0.5}."""
    xla_single_thread: bool = True
    """Turn XLA's CPU thread pool off (set before jax is first imported; see docstring)."""
    scale_state: bool = True
    """SMAX only: scale JaxMARL's world_state to O(1) features (see the module docstring)."""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"env.id = {self.id!r} is invalid: must be a JaxMARL registry "
                             "name such as 'HeuristicEnemySMAX' or 'MPE_simple_spread_v3'")
        if self.scenario is not None:
            if not isinstance(self.scenario, str):
                raise ValueError(f"env.scenario = {self.scenario!r} is invalid: must be a "
                                 "SMAX map name (e.g. '3m') or null")
            if self.id not in SMAX_IDS:
                raise ValueError(f"env.scenario = {self.scenario!r} is only for the SMAX ids "
                                 f"{list(SMAX_IDS)}, not env.id = {self.id!r}")
        kw = _plain(self.kwargs) if self.kwargs is not None else {}
        if not isinstance(kw, dict) or not all(isinstance(k, str) for k in kw):
            raise ValueError(f"env.kwargs = {self.kwargs!r} is invalid: must be a mapping of "
                             "keyword arguments (str keys) for jaxmarl.make")
        if "scenario" in kw:
            raise ValueError("env.kwargs.scenario is not accepted: name the SMAX map with "
                             "env.scenario (e.g. env.scenario=3m)")
        self.kwargs = kw


def import_jax(single_thread: bool = True):
    """Import jax (on the CPU, XLA threads as asked) and jaxmarl; a clear error without."""
    if "jax" not in sys.modules:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        if single_thread:
            flags = os.environ.get("XLA_FLAGS", "")
            if "xla_cpu_multi_thread_eigen" not in flags:
                os.environ["XLA_FLAGS"] = f"{flags} {XLA_SINGLE_THREAD_FLAGS}".strip()
    try:
        import jax
        import jaxmarl
    except ImportError as e:
        raise ImportError(f"JaxMARL envs (env=jaxmarl) need jax and jaxmarl, which are not "
                          f"installed ({e}): install them with `{INSTALL_HINT}`") from e
    if jax.config.jax_compilation_cache_dir is None and os.environ.get(CACHE_ENV) != "":
        # A SMAX step takes 10-30 s to compile; cached, a second run starts in ~1 s.
        jax.config.update("jax_compilation_cache_dir", os.environ.get(CACHE_ENV, CACHE_DIR))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    return jax, jaxmarl


def _accepted_kwargs(cls: type) -> set[str] | None:
    """Keyword names the constructor chain of ``cls`` names (None: cannot tell)."""
    from jaxmarl.environments.smax import SMAX
    from jaxmarl.environments.smax.heuristic_enemy_smax_env import EnemySMAX

    names: set[str] = set()
    open_end = True
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        open_end = any(p.kind == p.VAR_KEYWORD for p in params)
        if not open_end:
            break
    if issubclass(cls, EnemySMAX):  # its **env_kwargs go to SMAX
        names |= _accepted_kwargs(SMAX) or set()
    names.discard("self")
    return names


def make_jaxmarl_env(cfg: JaxMarlEnvConfig):
    """The JaxMARL env described by ``cfg`` (id, scenario and kwargs checked first)."""
    jax, jaxmarl = import_jax(cfg.xla_single_thread)
    from jaxmarl.registration import registered_envs

    if cfg.id not in registered_envs:
        raise ValueError(f"unknown JaxMARL env id {cfg.id!r}: registered ids are "
                         f"{sorted(registered_envs)}")
    kwargs = dict(cfg.kwargs)
    if cfg.scenario is not None:
        from jaxmarl.environments.smax.smax_env import MAP_NAME_TO_SCENARIO, map_name_to_scenario

        if cfg.scenario not in MAP_NAME_TO_SCENARIO:
            raise ValueError(f"unknown SMAX scenario {cfg.scenario!r}: known maps are "
                             f"{sorted(MAP_NAME_TO_SCENARIO)}")
        kwargs["scenario"] = map_name_to_scenario(cfg.scenario)
    cls = _env_class(cfg.id)
    if cls is not None:
        accepted = _accepted_kwargs(cls)
        for k in cfg.kwargs:
            if k not in accepted:
                raise ValueError(f"env.kwargs.{k} is not accepted by JaxMARL's {cfg.id} "
                                 f"({cls.__name__}): accepted keys are {sorted(accepted)}")
    try:
        return jaxmarl.make(cfg.id, **kwargs)
    except TypeError as e:
        raise ValueError(f"jaxmarl.make({cfg.id!r}, **{cfg.kwargs}) failed: {e}") from e


def _env_class(env_id: str) -> type | None:
    """The class jaxmarl.make builds for ``env_id`` (for kwarg checks), where known."""
    import jaxmarl.environments as envs

    table = {"SMAX": "SMAX", "HeuristicEnemySMAX": "HeuristicEnemySMAX",
             "LearnedPolicyEnemySMAX": "LearnedPolicyEnemySMAX",
             "MPE_simple_v3": "SimpleMPE", "MPE_simple_spread_v3": "SimpleSpreadMPE",
             "MPE_simple_reference_v3": "SimpleReferenceMPE",
             "MPE_simple_speaker_listener_v4": "SimpleSpeakerListenerMPE",
             "MPE_simple_tag_v3": "SimpleTagMPE", "MPE_simple_push_v3": "SimplePushMPE",
             "MPE_simple_adversary_v3": "SimpleAdversaryMPE",
             "MPE_simple_crypto_v3": "SimpleCryptoMPE",
             "MPE_simple_world_comm_v3": "SimpleWorldCommMPE",
             "switch_riddle": "SwitchRiddle"}
    name = table.get(env_id)
    return None if name is None else getattr(envs, name, None)


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
        obs_dim = int(np.prod(shapes.pop()))
        self._smax = hasattr(self._core(st0), "unit_alive")
        self._world_state = "world_state" in obs0
        self._state_scale = self._smax_state_scale(np.size(obs0["world_state"])) \
            if self._smax and self._world_state and cfg.scale_state else None
        try:
            env.get_avail_actions(st0)
            has_mask = True
        except NotImplementedError:
            has_mask = False
        self._has_mask = has_mask
        state_dim = int(np.size(obs0["world_state"])) if self._world_state \
            else obs_dim * len(agents)
        metrics = SMAX_METRICS if self._smax else ()
        self.spec = EnvSpec(
            agents=agents,
            obs_shape=(obs_dim,),
            state_dim=state_dim,
            n_actions=n_actions.pop(),
            has_action_mask=has_mask,
            state_is_concat_obs=not self._world_state,
            episode_metrics=metrics,
            success_metric="win" if self._smax else None,
        )
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
