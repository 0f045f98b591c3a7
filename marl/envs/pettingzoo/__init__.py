"""Generic PettingZoo adapter: ``B`` copies of any PettingZoo env as one :class:`VecEnv`.

Which env. ``id`` is either ``"<module>:<factory>"`` or a PettingZoo registry id
``"<namespace>/<name>-v<N>"`` (PettingZoo >= 1.27, e.g. ``butterfly/pistonball-v6``,
built with ``pettingzoo.make``; PettingZoo 1.27 deprecates importing its envs as modules).
In the first form the factory is looked up as an attribute of the imported module (a
submodule is imported when needed, so ``mpe2:simple_spread_v3`` works); a dotted path
after the colon is followed attribute by attribute. When it names a module, that module's
``parallel_env`` (``parallel=True``) or ``env`` (``parallel=False``) is called; anything
else callable is called as is. ``kwargs`` are passed to the factory. With
``parallel=True`` it must return a PettingZoo ``ParallelEnv``; with ``parallel=False`` an
``AECEnv``, which is converted with PettingZoo's own ``aec_to_parallel`` when its
metadata says ``is_parallelizable`` and with ``turn_based_aec_to_parallel`` otherwise
(board games: one AEC move per step; only the agent to move acts, the others' actions
are ignored by the env).

Atari. For factories of ``pettingzoo.atari`` the ROM is taken from the ROMs bundled in
ale-py: ``kwargs.auto_rom_install_path`` is set to ale-py's ``roms`` directory unless it
is given (the value ``"ale_py"`` means the same). Nothing is ever downloaded (no AutoROM).

Butterfly. ``pettingzoo.butterfly`` factories get ``render_mode="rgb_array"`` unless
``kwargs`` sets one: in PettingZoo 1.27 cooperative_pong and pistonball only draw their
screen (their observation) when a render mode is set; without one every observation is
a blank background.

Wrappers. ``wrappers`` lists SuperSuit wrappers applied in order with SuperSuit itself,
``getattr(supersuit, name)(env, *args, **kwargs)``, to the env the factory returns (before
an AEC env is converted). Each entry is a name (``"agent_indicator_v0"``, or the short
``"agent_indicator"`` = newest version) or a one-key mapping from the name to its keyword
arguments (``{"resize_v1": {"x_size": 84, "y_size": 84}}``), to a list of positional
arguments (``{"frame_stack_v1": [4]}``), to one positional argument (``{"dtype_v0":
"uint8"}``) or to null.

What the runner sees (an :class:`~marl.envs.base.EnvSpec` and the ``VecBuffers``):

* agents: ``possible_agents`` in order. Every agent needs a ``Discrete(A)`` action space
  of one size A (others: add ``pad_action_space_v0``; continuous envs: pick their
  discrete variant in ``kwargs``).
* observations: every agent's must have one shape (else add ``pad_observations_v0``).
  ``Dict`` observations with ``observation`` and ``action_mask`` entries give the
  observation and the action mask; a mask may also come in ``infos[agent]["action_mask"]``
  (seen at the first reset). ``uint8`` observations stay ``uint8`` (``obs_dtype``), all
  others become ``float32``. ``obs_layout`` says what multi-axis observations are:
  ``auto`` treats ``uint8`` ones as images (3 axes: channel-first ``(C, H, W)``, transposed
  from ``(H, W, C)`` when the last axis is the smallest; 2 axes: ``(1, H, W)``) and
  flattens all others to ``(O,)`` (e.g. pursuit's 7x7x3 float grid, too small for a
  Nature-DQN CNN); ``hwc`` / ``chw`` treat every 3-axis observation as an image stored
  channel-last (transposed to channel-first) / channel-first; ``flat`` flattens everything.
* state: ``env.state()`` flattened to float32 where the env implements it
  (``state="auto"`` or ``"env"``), else the concatenated (flattened) observations of all
  agents, dead agents' zeros included (``state="concat_obs"``, or ``"auto"`` without a
  ``state()``), flagged by ``EnvSpec.state_is_concat_obs``. Pixel envs whose ``state()``
  is a full-size screen should use ``concat_obs``.
* action masks: True = allowed. An agent whose mask allows nothing (the waiting player of
  a turn-based game) is given action 0 only, so the row is never empty; agents that are
  not alive have all-True rows.
* agents that leave ``env.agents`` mid-episode: ``alive`` False, observation zeros,
  action ignored (not passed to the env), reward whatever the env still gives (usually 0).
* episode end: when ``env.agents`` is empty or every agent in it is terminated or
  truncated. ``truncated[b]`` when some agent acting in the last step was truncated and
  not terminated, else ``terminated[b]``. Then ``final_obs`` / ``final_state`` /
  ``final_action_mask`` hold the observations the env returned in that step (zeros for
  agents that had left before) and the env is reset at once.

Seeding: ``reset(seed)`` resets env ``b`` with ``env_seeds(seed, B)[b]`` (from a numpy
``SeedSequence``, so batches of different seeds do not share env streams); later
auto-resets continue each env's own random stream. Episode statistics (return, length)
are counted by the runner; this adapter reports no extra episode metrics.

Exact resume. :func:`make_pettingzoo_vec_env` returns a
:class:`ResumablePettingZooVecEnv` (``get_state`` / ``set_state``, the
``ResumableVecEnv`` protocol) when one env of the config can be snapshotted: pickled with
all its state (:func:`snapshot_env`; EzPickle envs by their attributes, pygame surfaces
by their pixels) and restored. mpe2, SISL pursuit and the matrix games can; envs behind
SuperSuit's closure-based wrappers (the shipped pixel configs) and ALE emulators cannot,
and get a plain :class:`PettingZooVecEnv` without those methods, so a resumed run starts
fresh episodes. The state holds one pickled snapshot per env (MPE: ~16 KB each) and
the buffers; it works in process and with workers alike.

Speed. Stepping B Python envs is the bottleneck. In process (``num_workers=0``) every
step costs the envs' own time plus a few microseconds per env here (buffers are
preallocated and written in place; the agent bookkeeping is only rebuilt when the set of
live agents changes). With ``num_workers=k`` a :class:`~marl.envs.pettingzoo.workers.WorkerPool`
of k processes steps contiguous chunks of the B envs into shared memory; why it is ours
and not SuperSuit's, with measurements, is in :mod:`marl.envs.pettingzoo.workers`.

Modules, one job each: :mod:`.resolve` (``id`` and ``wrappers`` -> one built env),
:mod:`.layout` (inspecting it: spaces -> buffer layout), :mod:`.snapshot` (pickled exact
snapshots), :mod:`.group` (the adapter's semantics over a few envs), :mod:`.workers`
(the worker pool) and :mod:`.vecenv` (the VecEnv).
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
