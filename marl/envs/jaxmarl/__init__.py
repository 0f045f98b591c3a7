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

from marl.envs.jaxmarl.loading import (
    CACHE_DIR,
    CACHE_ENV,
    INSTALL_HINT,
    SMAX_IDS,
    SMAX_METRICS,
    XLA_SINGLE_THREAD_FLAGS,
    JaxMarlEnvConfig,
    import_jax,
    make_jaxmarl_env,
)
from marl.envs.jaxmarl.vecenv import JaxMarlVecEnv

__all__ = [
    "CACHE_DIR", "CACHE_ENV", "INSTALL_HINT", "SMAX_IDS", "SMAX_METRICS",
    "XLA_SINGLE_THREAD_FLAGS", "JaxMarlEnvConfig", "JaxMarlVecEnv", "import_jax",
    "make_jaxmarl_env",
]
