"""Generic PettingZoo adapter: ``B`` copies of any PettingZoo env as one :class:`VecEnv`.

Which env. ``id`` is ``"<module>:<factory>"`` or a PettingZoo (>= 1.27) registry id
``"<namespace>/<name>-v<N>"`` (``butterfly/pistonball-v6``, built with
``pettingzoo.make``). In the first form the factory is an attribute of the module (a
submodule is imported when needed, so ``mpe2:simple_spread_v3`` works; a dotted path is
followed attribute by attribute); a module stands for its ``parallel_env``
(``parallel=True``) or ``env`` (``parallel=False``). ``kwargs`` go to the factory, which
must return a ``ParallelEnv`` (``parallel=True``) or an ``AECEnv``, converted with
``aec_to_parallel`` when it ``is_parallelizable``, else ``turn_based_aec_to_parallel``
(board games: one move per step; only the agent to move acts). ``pettingzoo.atari``
factories get ale-py's bundled ROMs (nothing is downloaded); ``pettingzoo.butterfly``
factories get ``render_mode="rgb_array"`` unless ``kwargs`` sets one, because without
one their observations stay blank (PettingZoo 1.27).

Wrappers. ``wrappers`` lists SuperSuit wrappers applied in order,
``getattr(supersuit, name)(env, *args, **kwargs)``, before an AEC env is converted: a
name (``"agent_indicator_v0"``, or ``"agent_indicator"`` = newest version) or a one-key
mapping from it to keyword arguments (``{"resize_v1": {"x_size": 84, "y_size": 84}}``),
a list of positional arguments (``{"frame_stack_v1": [4]}``), one argument or null.

What the runner sees (an :class:`~marl.envs.base.EnvSpec` and the ``VecBuffers``):

* agents: ``possible_agents`` in order, each with a ``Discrete(A)`` action space of one
  size A (else add ``pad_action_space_v0``; continuous envs: pick their discrete variant
  in ``kwargs``).
* observations: one shape for every agent (else add ``pad_observations_v0``). ``Dict``
  observations with ``observation`` and ``action_mask`` entries give both; a mask may
  also come in ``infos[agent]["action_mask"]`` (seen at the first reset). ``uint8`` stays
  ``uint8``, all else becomes ``float32``. ``obs_layout``: ``auto`` treats ``uint8``
  observations as images (3 axes: channel-first ``(C, H, W)``, transposed from
  ``(H, W, C)`` when the last axis is the smallest; 2 axes: ``(1, H, W)``) and flattens
  all others to ``(O,)`` (pursuit's 7x7x3 float grid is too small for a CNN); ``hwc`` /
  ``chw`` treat every 3-axis observation as a channel-last / channel-first image;
  ``flat`` flattens everything.
* state: ``env.state()`` flattened to float32 where the env implements it
  (``state="auto"`` or ``"env"``), else the agents' concatenated observations, dead
  agents' zeros included (``state_is_concat_obs``; for pixels S = 0 and the critic
  encodes the frames). Pixel envs whose ``state()`` is a full screen should use
  ``concat_obs``.
* action masks: True = allowed; a row that allows nothing (the waiting player of a
  turn-based game) allows action 0; agents not alive have all-True rows.
* agents that leave ``env.agents`` mid-episode: ``alive`` False, observation zeros,
  action not passed to the env, reward whatever the env still gives (usually 0).
* episode end: ``env.agents`` empty or all of them terminated or truncated.
  ``truncated[b]`` when some agent acting in the last step was truncated and not
  terminated (only those have ``final_alive``), else ``terminated[b]``. ``final_*`` hold
  what the env returned in that step and the env is reset at once.

Seeding: ``reset(seed)`` resets env ``b`` with ``env_seeds(seed, B)[b]`` (a numpy
``SeedSequence``, so batches of different seeds share no env streams); auto-resets
continue each env's own stream.

Episode statistics: the numeric scalars of the ``infos`` of an episode's last step, as
``info/<key>`` (mean over the agents reporting it) and ``info/<agent>/<key>`` (the rule:
:mod:`.group`); they reach the metrics as ``train/info/<key>_mean`` and
``eval/info/<key>_mean``. An env whose infos hold no numbers adds none.

Exact resume: :func:`make_pettingzoo_vec_env` returns a
:class:`ResumablePettingZooVecEnv` when an env of the config survives a pickled snapshot
(:mod:`.snapshot`: mpe2, SISL pursuit, the matrix games), else a plain
:class:`PettingZooVecEnv` without ``get_state`` (SuperSuit's closure-based wrappers, ALE
emulators), so a resumed run starts fresh episodes.

Speed: in process (``num_workers=0``) a step costs the envs' own time plus a few
microseconds per env; ``num_workers=k`` steps the envs in k processes into shared
memory (:mod:`.workers` says why that pool is ours, with measurements).

Modules, one job each: :mod:`.resolve` (``id`` and ``wrappers`` -> one built env),
:mod:`.layout` (spaces -> buffer layout), :mod:`.snapshot` (pickled exact snapshots),
:mod:`.group` (the adapter's semantics over a few envs), :mod:`.workers` (the worker
pool) and :mod:`.vecenv` (the VecEnv).
"""

from __future__ import annotations

from typing import Any

from marl.envs.checks import as_config
from marl.envs.configs import PettingZooEnvConfig
from marl.envs.pettingzoo.layout import env_seeds, inspect_env
from marl.envs.pettingzoo.resolve import (
    ale_roms_dir,
    build_env,
    factory_kwargs,
    resolve_factory,
    resolve_wrapper,
    supersuit_wrappers,
)
from marl.envs.pettingzoo.snapshot import restore_env, snapshot_env, snapshot_error
from marl.envs.pettingzoo.vecenv import PettingZooVecEnv, ResumablePettingZooVecEnv

__all__ = [
    "PettingZooEnvConfig", "PettingZooVecEnv", "ResumablePettingZooVecEnv", "ale_roms_dir",
    "build_env", "env_seeds", "factory_kwargs", "inspect_env", "make_pettingzoo_vec_env",
    "resolve_factory", "resolve_wrapper", "restore_env", "snapshot_env", "snapshot_error",
    "supersuit_wrappers",
]


def make_pettingzoo_vec_env(cfg: Any, num_envs: int, seed: int | None = None) -> PettingZooVecEnv:
    """Registry factory of the ``pettingzoo`` env: resumable when the env can be saved."""
    cfg = as_config(cfg, PettingZooEnvConfig)
    cls = ResumablePettingZooVecEnv if snapshot_error(cfg) is None else PettingZooVecEnv
    return cls(cfg, num_envs=num_envs, seed=seed)
