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
live agents changes). With ``num_workers=k`` the B envs are split into k contiguous
chunks, each stepped by a subprocess (``spawn``) that writes straight into the
shared-memory buffers; a step costs one tiny message per worker, starting the workers
about a second. Workers only pay off with idle cores and envs slower than that message:
on a 2-vCPU machine whose two processes together get ~1.1x the throughput of one, mpe2
simple_spread ran at 1.6-2.1k env steps/s in process and 1.2-1.8k with workers.
SuperSuit's own vector machinery (``pettingzoo_env_to_vec_env_v1`` +
``concat_vec_envs_v1``) was not used: it flattens agents into env slots, drops
``state()``, needs ``black_death`` for agent death (and then hides who is alive) and does
not carry action masks in its shared memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import importlib
import io
import math
import multiprocessing as mp
import os
import pickle
import pkgutil
import re
import traceback
import types
import weakref
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import EzPickle

from marl.envs.base import EnvSpec, VecBuffers, buffers_state, check_actions, restore_buffers

STATE_MODES = ("auto", "env", "concat_obs")
OBS_LAYOUTS = ("auto", "hwc", "chw", "flat")
_WRAPPER_NAME = re.compile(r"^[a-z][a-z0-9_]*_v\d+$")
_NOT_WRAPPERS = ("vec",)  # SuperSuit's vector-env constructors are not env wrappers


# ---------------------------------------------------------------------- config
@dataclass
class PettingZooEnvConfig:
    """Any PettingZoo env through the generic adapter (see the module docstring)."""

    name: str = "pettingzoo"
    """Registry key of the env."""
    id: str = "mpe2:simple_spread_v3"
    """"<module>:<factory>" (mpe2:simple_spread_v3) or a registry id (sisl/pursuit-v5)."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the factory, e.g. {continuous_actions: false, max_cycles: 25}."""
    wrappers: list[Any] = field(default_factory=list)
    """SuperSuit wrappers applied in order: names or one-key mappings name -> kwargs."""
    parallel: bool = True
    """The factory returns a ParallelEnv (true) or an AEC env to convert (false)."""
    state: str = "auto"
    """Global state: auto (env.state() if implemented, else concat_obs), env, concat_obs."""
    obs_layout: str = "auto"
    """Multi-axis observations: auto (uint8 = images, else flattened), hwc, chw or flat."""
    num_workers: int = 0
    """Subprocesses stepping the envs; 0 = step them in this process."""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not (
            re.fullmatch(r"[\w.]+:[\w.]+", self.id) or re.fullmatch(r"[\w.]+/[\w.]+-v\d+", self.id)
        ):
            raise ValueError(
                f"env.id = {self.id!r} is invalid: must be '<module>:<factory>' (e.g. "
                "'mpe2:simple_spread_v3', 'pettingzoo.butterfly:pistonball_v6') or a "
                "PettingZoo registry id '<namespace>/<name>-v<N>' (e.g. 'butterfly/pistonball-v6')"
            )
        kw = _plain(self.kwargs) if self.kwargs is not None else {}
        if not isinstance(kw, dict) or not all(isinstance(k, str) for k in kw):
            raise ValueError(
                f"env.kwargs = {self.kwargs!r} is invalid: must be a mapping of keyword "
                "arguments (str keys) for the factory"
            )
        self.kwargs = kw
        wr = _plain(self.wrappers) if self.wrappers is not None else []
        if not isinstance(wr, list):
            raise ValueError(
                f"env.wrappers = {self.wrappers!r} is invalid: must be a list of SuperSuit "
                "wrapper names or one-key mappings {name: kwargs}"
            )
        self.wrappers = wr
        for i, entry in enumerate(wr):
            resolve_wrapper(entry, i)
        if not isinstance(self.parallel, (bool, np.bool_)):
            raise ValueError(f"env.parallel = {self.parallel!r} is invalid: must be true or false")
        if self.state not in STATE_MODES:
            raise ValueError(
                f"env.state = {self.state!r} is invalid: choose one of {list(STATE_MODES)}"
            )
        if self.obs_layout not in OBS_LAYOUTS:
            raise ValueError(
                f"env.obs_layout = {self.obs_layout!r} is invalid: choose one of "
                f"{list(OBS_LAYOUTS)}"
            )
        if (
            not isinstance(self.num_workers, (int, np.integer))
            or isinstance(self.num_workers, bool)
            or self.num_workers < 0
        ):
            raise ValueError(
                f"env.num_workers = {self.num_workers!r} is invalid: must be an int >= 0 "
                "(0 = step the envs in this process)"
            )


def _plain(x: Any) -> Any:
    """``x`` with every mapping turned into a dict and every sequence into a list."""
    if isinstance(x, (str, bytes)):
        return x
    if type(x).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(x, resolve=True)
    if isinstance(x, Mapping):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def as_config(cfg: Any) -> PettingZooEnvConfig:
    """A :class:`PettingZooEnvConfig` as is; a dict / DictConfig of its fields."""
    if cfg is None:
        return PettingZooEnvConfig()
    if isinstance(cfg, PettingZooEnvConfig):
        return cfg
    if isinstance(cfg, Mapping) or hasattr(cfg, "keys"):
        names = {f.name for f in dataclasses.fields(PettingZooEnvConfig)}
        keys = [str(k) for k in cfg]
        unknown = sorted(k for k in keys if k not in names and k[:1] != "_")
        if unknown:
            raise TypeError(
                f"unknown PettingZooEnvConfig field(s) {unknown}; valid: {sorted(names)}"
            )
        return PettingZooEnvConfig(**{k: _plain(cfg[k]) for k in keys if k in names})
    raise TypeError(f"expected a PettingZooEnvConfig or a mapping of its fields, got {type(cfg)}")


# ---------------------------------------------------------------------- wrappers
def supersuit_wrappers() -> dict[str, Callable]:
    """SuperSuit's env wrappers by versioned name (vector-env constructors excluded)."""
    import supersuit

    out = {}
    for n in dir(supersuit):
        if _WRAPPER_NAME.match(n) and not any(s in n for s in _NOT_WRAPPERS):
            fn = getattr(supersuit, n)
            if callable(fn):
                out[n] = fn
    return out


def _wrapper_by_name(name: str, where: str, entry: Any) -> tuple[str, Callable]:
    table = supersuit_wrappers()
    if name in table:
        return name, table[name]
    versions = [n for n in table if re.fullmatch(re.escape(name) + r"_v\d+", n)]
    if versions:
        best = max(versions, key=lambda n: int(n.rsplit("_v", 1)[1]))
        return best, table[best]
    short = {n.rsplit("_v", 1)[0] for n in table}
    close = difflib.get_close_matches(name, sorted(table) + sorted(short), n=5, cutoff=0.5)
    hint = f"did you mean {close}? " if close else ""
    raise ValueError(
        f"{where} = {entry!r} is invalid: SuperSuit has no wrapper {name!r}; {hint}"
        f"available wrappers: {sorted(table)}"
    )


def resolve_wrapper(entry: Any, index: int = 0) -> tuple[str, Callable, list, dict]:
    """``(name, wrapper, args, kwargs)`` of one ``wrappers`` entry; ValueError if bad."""
    where = f"env.wrappers[{index}]"
    entry = _plain(entry)
    if isinstance(entry, str):
        name, value = entry, None
    elif isinstance(entry, dict) and len(entry) == 1 and isinstance(next(iter(entry)), str):
        name, value = next(iter(entry.items()))
    else:
        raise ValueError(
            f"{where} = {entry!r} is invalid: each wrapper is a SuperSuit wrapper name "
            "(e.g. agent_indicator_v0) or a one-key mapping {name: {kwarg: value}}"
        )
    name, fn = _wrapper_by_name(name, where, entry)
    if value is None:
        args, kwargs = [], {}
    elif isinstance(value, dict):
        args, kwargs = [], value
    elif isinstance(value, list):
        args, kwargs = value, {}
    else:
        args, kwargs = [value], {}
    return name, fn, args, kwargs


# ---------------------------------------------------------------------- building one env
def _bad_id(env_id: str, why: str) -> ValueError:
    return ValueError(
        f"env.id = {env_id!r} is invalid: {why} (env.id is '<module>:<factory>', e.g. "
        "'mpe2:simple_spread_v3', or a PettingZoo registry id such as "
        "'butterfly/pistonball-v6')"
    )


def _unsupported(env_id: str, why: str) -> ValueError:
    return ValueError(f"env.id = {env_id!r} is not supported as configured: {why}")


def _names_in(module: types.ModuleType) -> list[str]:
    names = {n for n in dir(module) if not n.startswith("_")}
    if hasattr(module, "__path__"):
        names |= {m.name for m in pkgutil.iter_modules(module.__path__)}
    return sorted(names)


def _registry_factory(env_id: str, parallel: bool) -> tuple[Callable[..., Any], str]:
    import pettingzoo

    kind = "parallel" if parallel else "aec"
    try:
        spec = pettingzoo.spec(kind, env_id)
    except Exception as e:
        hint = ""
        other = "aec" if parallel else "parallel"
        try:
            pettingzoo.spec(other, env_id)
            flag = "true" if not parallel else "false"
            hint = f" (it is in the {other} registry: set env.parallel = {flag})"
        except Exception:
            pass
        raise _bad_id(env_id, f"not in PettingZoo's {kind} registry{hint}: {e}") from e

    def make(**kwargs: Any) -> Any:
        return pettingzoo.make(kind, spec, **kwargs)

    return make, spec.entry_point.split(":", 1)[0]


def resolve_factory(env_id: str, parallel: bool = True) -> tuple[Callable[..., Any], str]:
    """The callable that ``env.id`` names and the module it comes from.

    Raises ValueError naming the problem when ``env.id`` does not name an env factory.
    """
    if ":" not in env_id:
        return _registry_factory(env_id, parallel)
    mod_name, attr = env_id.split(":", 1)
    try:
        obj: Any = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        if e.name is not None and mod_name.startswith(e.name):
            raise _bad_id(env_id, f"no module named {e.name!r}") from e
        raise _bad_id(
            env_id, f"importing {mod_name!r} failed: {e} (a dependency is missing)"
        ) from e
    except Exception as e:
        raise _bad_id(env_id, f"importing {mod_name!r} failed: {type(e).__name__}: {e}") from e
    path = mod_name
    for part in attr.split("."):
        try:
            nxt = getattr(obj, part)
        except AttributeError:
            nxt = None
            if isinstance(obj, types.ModuleType):
                try:
                    nxt = importlib.import_module(f"{path}.{part}")
                except ModuleNotFoundError as e:
                    if e.name != f"{path}.{part}":
                        raise _bad_id(
                            env_id, f"importing {path}.{part} failed: {e} (a dependency is "
                            "missing)"
                        ) from e
                except Exception as e:
                    raise _bad_id(
                        env_id, f"importing {path}.{part} failed: {type(e).__name__}: {e}"
                    ) from e
            if nxt is None:
                pool = _names_in(obj) if isinstance(obj, types.ModuleType) else dir(obj)
                close = difflib.get_close_matches(part, pool, n=5, cutoff=0.6)
                hint = f"; close names: {close}" if close else ""
                raise _bad_id(env_id, f"{path!r} has no attribute {part!r}{hint}") from None
        except Exception as e:  # e.g. PettingZoo's DeprecatedEnv for an old version
            raise _bad_id(env_id, f"{path}.{part}: {type(e).__name__}: {e}") from e
        obj = nxt
        path = f"{path}.{part}"
    if isinstance(obj, types.ModuleType) or not callable(obj):
        fname = "parallel_env" if parallel else "env"
        try:
            fn = getattr(obj, fname, None)
        except Exception as e:  # PettingZoo's DeprecatedModule raises DeprecatedEnv here
            raise _bad_id(env_id, f"{path}: {type(e).__name__}: {e}") from e
        if fn is None and isinstance(obj, types.ModuleType):
            other = "env.parallel = false" if parallel else "env.parallel = true"
            raise _bad_id(env_id, f"module {path!r} has no {fname}() (or try {other})")
        obj = obj if fn is None else fn
    if not callable(obj):
        raise _bad_id(env_id, f"{path!r} is a {type(obj).__name__}, not a callable env factory")
    return obj, str(getattr(obj, "__module__", None) or mod_name)


def ale_roms_dir() -> str:
    """The directory of the Atari ROMs bundled with ale-py."""
    import ale_py

    return os.path.join(os.path.dirname(os.path.abspath(ale_py.__file__)), "roms")


def factory_kwargs(cfg: PettingZooEnvConfig, origin: str) -> dict[str, Any]:
    """``cfg.kwargs`` plus the defaults some PettingZoo families need.

    ``origin`` is the module the factory comes from (see :func:`resolve_factory`). Atari:
    ale-py's ROM directory. Butterfly: ``render_mode="rgb_array"`` unless given, because
    in PettingZoo 1.27 cooperative_pong and pistonball only draw their screen, which is
    also their observation, when a render mode is set (else observations stay blank).
    """
    kwargs = dict(cfg.kwargs)
    mods = (cfg.id.split(":", 1)[0], origin)

    def family(name: str) -> bool:
        return any(m == name or m.startswith(name + ".") for m in mods)

    if family("pettingzoo.atari") and kwargs.get("auto_rom_install_path") in (None, "ale_py"):
        kwargs["auto_rom_install_path"] = ale_roms_dir()
    if family("pettingzoo.butterfly") and "render_mode" not in kwargs:
        kwargs["render_mode"] = "rgb_array"
    return kwargs


def _without_order_checks(env: Any) -> Any:
    """``env`` without PettingZoo's per-call checks inside its AEC -> parallel conversion.

    A ``parallel_env()`` made by PettingZoo's ``parallel_wrapper_fn`` (mpe2, SISL, ...) is
    ``aec_to_parallel(OrderEnforcingWrapper(AssertOutOfBoundsWrapper(raw_env)))``. The two
    checks assert that reset came before step and that actions are in the action space,
    which the adapter guarantees itself (it resets at once and checks every action), and
    every attribute the conversion reads goes through their ``__getattr__`` forwarding:
    mpe2 simple_spread steps 1.3-1.6x faster without them. Other envs are left as they are.
    """
    from pettingzoo.utils.conversions import aec_to_parallel_wrapper
    from pettingzoo.utils.wrappers import AssertOutOfBoundsWrapper, OrderEnforcingWrapper

    if type(env) is aec_to_parallel_wrapper:
        inner = env.aec_env
        while type(inner) in (OrderEnforcingWrapper, AssertOutOfBoundsWrapper):
            inner = inner.env
        env.aec_env = inner
    return env


def build_env(cfg: PettingZooEnvConfig):
    """One wrapped PettingZoo ``ParallelEnv`` as ``cfg`` describes (not reset)."""
    from pettingzoo import AECEnv, ParallelEnv
    from pettingzoo.utils.conversions import aec_to_parallel, turn_based_aec_to_parallel

    factory, origin = resolve_factory(cfg.id, cfg.parallel)
    kwargs = factory_kwargs(cfg, origin)
    try:
        env = factory(**kwargs)
    except Exception as e:
        if isinstance(e, ImportError) or type(e).__name__ in (
            "FailedToImport", "DependencyNotInstalled"
        ):
            raise ValueError(
                f"env.id = {cfg.id!r} cannot be built: a dependency is missing "
                f"({type(e).__name__}: {e})"
            ) from e
        raise ValueError(
            f"env.kwargs = {cfg.kwargs!r} is invalid: {cfg.id}(**kwargs) raised "
            f"{type(e).__name__}: {e}"
        ) from e
    want = ParallelEnv if cfg.parallel else AECEnv
    if not isinstance(env, want):
        if isinstance(env, (ParallelEnv, AECEnv)):
            got = "an AEC env" if isinstance(env, AECEnv) else "a ParallelEnv"
            flag = "false" if isinstance(env, AECEnv) else "true"
            why = f"the factory returned {got}: set env.parallel = {flag}"
        else:
            why = (
                f"the factory returned a {type(env).__module__}.{type(env).__qualname__}, not "
                f"a PettingZoo {'ParallelEnv' if cfg.parallel else 'AECEnv'}"
            )
        close = getattr(env, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                close()
        raise _bad_id(cfg.id, why)
    env = _without_order_checks(env)
    for i, entry in enumerate(cfg.wrappers):
        name, fn, args, kw = resolve_wrapper(entry, i)
        try:
            env = fn(env, *args, **kw)
        except Exception as e:
            raise ValueError(
                f"env.wrappers[{i}] = {entry!r} is invalid: supersuit.{name} raised "
                f"{type(e).__name__}: {e}"
            ) from e
    if not cfg.parallel:
        if env.metadata.get("is_parallelizable", False):
            env = aec_to_parallel(env)
        else:
            env = turn_based_aec_to_parallel(env)
    return env


# ---------------------------------------------------------------------- layout
@dataclass(frozen=True)
class _Layout:
    """How one env's outputs map onto the VecBuffers (picklable, sent to workers)."""

    agents: tuple[str, ...]
    n_actions: int
    native_shape: tuple[int, ...]  # observation shape as the env gives it
    obs_shape: tuple[int, ...]  # as stored: (O,), (C, H, W), ...
    obs_kind: str  # "same", "hwc" (transpose), "hw" (add channel), "flat"
    obs_dtype: str
    mask_mode: str | None  # None, "obs" (Dict observation), "info"
    state_from_env: bool
    state_dim: int


def _obs_part(space: Any) -> Any:
    if isinstance(space, spaces.Dict):
        return space.spaces.get("observation")
    return space


def inspect_env(env: Any, cfg: PettingZooEnvConfig, seed: int | None = None) -> _Layout:
    """Check ``env`` (a wrapped ParallelEnv) against what the adapter supports; reset it."""
    env_id = cfg.id
    agents = tuple(getattr(env, "possible_agents", ()) or ())
    if not agents:
        raise _unsupported(env_id, "the env has no possible_agents")
    # Actions: Discrete, one size.
    sizes = {}
    for a in agents:
        sp = env.action_space(a)
        if not isinstance(sp, spaces.Discrete):
            hint = ""
            if isinstance(sp, spaces.Box):
                hint = (
                    " (choose the env's discrete variant in env.kwargs, e.g. "
                    "continuous_actions: false or continuous: false)"
                )
            raise _unsupported(
                env_id,
                f"only Discrete action spaces are supported; agent {a!r} has {sp}{hint}",
            )
        if int(sp.start) != 0:
            raise _unsupported(
                env_id, f"agent {a!r} has {sp} with start={int(sp.start)}: actions must start at 0"
            )
        sizes[a] = int(sp.n)
    if len(set(sizes.values())) > 1:
        raise _unsupported(
            env_id,
            f"agents have Discrete action spaces of different sizes {sizes}; add the SuperSuit "
            "wrapper pad_action_space_v0 to env.wrappers",
        )
    n_actions = next(iter(sizes.values()))
    # Observations: one shape; Dict observations carry the action mask.
    mask_modes, shapes, dtypes = set(), {}, set()
    for a in agents:
        sp = env.observation_space(a)
        if isinstance(sp, spaces.Dict):
            if "observation" not in sp.spaces:
                raise _unsupported(
                    env_id,
                    f"agent {a!r} has a Dict observation space without an 'observation' "
                    f"entry (keys {list(sp.spaces)}); only {{observation, action_mask}} "
                    "dicts are supported",
                )
            mask_modes.add("obs" if "action_mask" in sp.spaces else None)
        base = _obs_part(sp)
        shape = getattr(base, "shape", None)
        if not isinstance(base, (spaces.Box, spaces.MultiBinary, spaces.MultiDiscrete)) or (
            not shape
        ):
            raise _unsupported(
                env_id,
                f"agent {a!r} has observation space {base}; only Box (or MultiBinary / "
                "MultiDiscrete) observations with a shape are supported",
            )
        shapes[a] = tuple(int(s) for s in shape)
        dtypes.add(np.dtype(base.dtype))
    if len(set(shapes.values())) > 1:
        raise _unsupported(
            env_id,
            f"agents' observations have different shapes {shapes}; add the SuperSuit wrapper "
            "pad_observations_v0 to env.wrappers",
        )
    if len(mask_modes) > 1:
        raise _unsupported(env_id, "some agents' observations carry an action_mask and others not")
    mask_mode = next(iter(mask_modes)) if mask_modes else None
    native = next(iter(shapes.values()))
    obs_dtype = "uint8" if dtypes == {np.dtype(np.uint8)} else "float32"
    layout = cfg.obs_layout
    image = layout in ("hwc", "chw") or (layout == "auto" and obs_dtype == "uint8")
    if len(native) == 1:
        kind, shape = "same", native
    elif image and len(native) == 2:
        kind, shape = "hw", (1, *native)
    elif image and len(native) == 3:
        h, w, c = native
        hwc = layout == "hwc" or (layout == "auto" and c < h and c < w)
        kind, shape = ("hwc", (c, h, w)) if hwc else ("same", native)
    else:
        kind, shape = "flat", (math.prod(native),)
    # Reset once: info masks and the state.
    obs, infos = env.reset(seed=seed)
    if mask_mode is None and isinstance(infos, Mapping) and any(
        isinstance(v, Mapping) and "action_mask" in v for v in infos.values()
    ):
        mask_mode = "info"
    obs_size = math.prod(shape)
    # Without an env state the learner uses the observations: vectors concatenated here;
    # pixels (S = 0 here) encoded by the critic's conv torso and concatenated there, so no
    # copy of every agent's frames is stored twice per step.
    state_from_env = False
    state_dim = 0 if len(shape) == 3 else len(agents) * obs_size
    if cfg.state in ("auto", "env"):
        try:
            st = np.asarray(env.state())
        except (NotImplementedError, AttributeError) as e:
            if cfg.state == "env":
                raise ValueError(
                    f"env.state = 'env' is invalid: {cfg.id} does not implement state() "
                    f"({type(e).__name__}: {e}); use auto or concat_obs"
                ) from e
        else:
            if st.size == 0 or not np.issubdtype(st.dtype, np.number):
                raise ValueError(
                    f"env.state = {cfg.state!r} is invalid: {cfg.id}'s state() gave "
                    f"{st.dtype} {st.shape}, not a numeric array; use concat_obs"
                )
            state_from_env, state_dim = True, int(st.size)
    return _Layout(
        agents=agents,
        n_actions=n_actions,
        native_shape=native,
        obs_shape=tuple(shape),
        obs_kind=kind,
        obs_dtype=obs_dtype,
        mask_mode=mask_mode,
        state_from_env=state_from_env,
        state_dim=state_dim,
    )


def env_seeds(seed: int | None, num_envs: int) -> list[int | None]:
    """The reset seed of each of ``num_envs`` envs for a batch ``seed`` (< 2**31 each)."""
    if seed is None:
        return [None] * num_envs
    words = np.random.SeedSequence(int(seed)).generate_state(num_envs, np.uint32)
    return [int(w >> 1) for w in words]


# ---------------------------------------------------------------------- snapshots
def _new_instance(cls: type) -> Any:
    return cls.__new__(cls)


def _set_attributes(obj: Any, state: dict[str, Any]) -> None:
    obj.__dict__.update(state)


def _surface_parts(surf: Any) -> tuple:
    """A pygame Surface as (size, flags, depth, masks, colorkey, alpha, zlib'd pixels)."""
    return (surf.get_size(), surf.get_flags(), surf.get_bitsize(), surf.get_masks(),
            surf.get_colorkey(), surf.get_alpha(), zlib.compress(surf.get_buffer().raw, 1))


def _surface_from(size, flags, depth, masks, colorkey, alpha, pixels) -> Any:
    import pygame

    surf = pygame.Surface(size, flags, depth, masks)
    raw = zlib.decompress(pixels)
    view = surf.get_buffer()
    if view.length != len(raw):
        raise ValueError(f"pygame surface of {view.length} bytes, saved pixels {len(raw)}")
    view.write(raw, 0)
    del view
    if colorkey is not None:
        surf.set_colorkey(colorkey)
    if alpha is not None:
        surf.set_alpha(alpha)
    return surf


def _font_from(path: str, size: float) -> Any:
    import pygame.freetype

    pygame.freetype.init()  # idempotent; closing an MPE env quits pygame altogether
    return pygame.freetype.Font(path, size)


class _SnapshotPickler(pickle.Pickler):
    """Pickles a live env with everything in it, not a recipe to build a fresh one.

    Gymnasium's ``EzPickle`` (the raw envs of PettingZoo's MPE, SISL, butterfly and
    Atari families) pickles only constructor arguments, so a plain pickle or deepcopy
    restores a new, un-reset env: here such objects are pickled by their attributes.
    pygame surfaces (MPE's offscreen canvas) are pickled by their pixels, freetype fonts
    by file and size. Anything else that cannot be pickled (SuperSuit's closures, ALE
    emulators) makes the snapshot fail.
    """

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, type):
            return NotImplemented
        if isinstance(obj, EzPickle):
            return (_new_instance, (type(obj),), dict(vars(obj)), None, None, _set_attributes)
        if type(obj).__module__.startswith("pygame"):
            import pygame
            import pygame.freetype

            if isinstance(obj, pygame.Surface):
                return (_surface_from, _surface_parts(obj))
            if isinstance(obj, pygame.freetype.Font):
                return (_font_from, (obj.path, obj.size))
        return NotImplemented


def snapshot_env(env: Any) -> bytes:
    """The exact state of one (wrapped) PettingZoo env as bytes (:func:`restore_env`)."""
    out = io.BytesIO()
    _SnapshotPickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(env)
    return out.getvalue()


def restore_env(data: bytes) -> Any:
    """A new env in exactly the state :func:`snapshot_env` saved."""
    return pickle.loads(data)


_SNAPSHOT_ERRORS: dict[str, str | None] = {}


def snapshot_error(cfg: PettingZooEnvConfig) -> str | None:
    """None if envs built from ``cfg`` can be snapshotted, else why not (cached).

    Builds and resets one env, snapshots and restores it. Bad configs are not reported
    here (None): building the VecEnv reports them. The two probe envs are dropped, not
    closed: closing an mpe2 env calls ``pygame.quit()`` for the whole process.
    """
    key = repr((cfg.id, cfg.kwargs, cfg.wrappers, cfg.parallel))
    if key not in _SNAPSHOT_ERRORS:
        try:
            env = build_env(cfg)
            env.reset(seed=0)
        except Exception:  # noqa: BLE001 - the VecEnv constructor reports bad configs
            return None
        try:
            restore_env(snapshot_env(env))
            _SNAPSHOT_ERRORS[key] = None
        except Exception as e:  # noqa: BLE001 - any failure means "not resumable"
            _SNAPSHOT_ERRORS[key] = f"{type(e).__name__}: {e}"
    return _SNAPSHOT_ERRORS[key]


# ---------------------------------------------------------------------- stepping
class _EnvGroup:
    """A few envs writing into rows of VecBuffers (the whole batch, or one worker's slice).

    Holds the one implementation of the adapter's semantics, used in process and in the
    workers alike.
    """

    def __init__(self, envs: list, layout: _Layout, buf: VecBuffers) -> None:
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
        buf.reward[:] = 0.0
        buf.terminated[:] = False
        buf.truncated[:] = False
        for j, s in enumerate(seeds):
            self._reset_one(j, s)

    def step(self, actions: np.ndarray) -> None:
        buf = self.buf
        buf.terminated[:] = False
        buf.truncated[:] = False
        reward = buf.reward
        agents = self.agents
        acts = actions.tolist()
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
            # Episode over: final outputs = what the env returned in this step.
            pairs = [(i, a) for i, a in enumerate(agents) if a in obs]
            self._write(j, obs, infos, pairs)
            present = {i for i, _ in pairs}
            self._blank(j, [i for i in range(len(agents)) if i not in present])
            self._write_state(j)
            if any(trunc.get(a, False) and not term.get(a, False) for _, a in live):
                buf.truncated[j] = True
            else:
                buf.terminated[j] = True
            buf.final_obs[j] = self._obs[j]
            buf.final_state[j] = self._state[j]
            buf.final_action_mask[j] = self._mask[j]
            self._reset_one(j, None)

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


# ---------------------------------------------------------------------- workers
_ALIGN = 64


def _buffer_layout(spec: EnvSpec, num_envs: int) -> dict[str, tuple[tuple[int, ...], str, int]]:
    """name -> (shape, dtype, byte offset) of every shared array; '_total' -> size."""
    b, n, a, s = num_envs, spec.n_agents, spec.n_actions, spec.state_dim
    arrays = {
        "obs": ((b, n, *spec.obs_shape), spec.obs_dtype),
        "state": ((b, s), "float32"),
        "reward": ((b, n), "float32"),
        "terminated": ((b,), "bool"),
        "truncated": ((b,), "bool"),
        "final_obs": ((b, n, *spec.obs_shape), spec.obs_dtype),
        "final_state": ((b, s), "float32"),
        "action_mask": ((b, n, a), "bool"),
        "final_action_mask": ((b, n, a), "bool"),
        "alive": ((b, n), "bool"),
        "actions": ((b, n), "int64"),
    }
    out, off = {}, 0
    for name, (shape, dtype) in arrays.items():
        out[name] = (shape, dtype, off)
        size = math.prod(shape) * np.dtype(dtype).itemsize
        off += -(-size // _ALIGN) * _ALIGN
    out["_total"] = ((), "uint8", max(off, _ALIGN))
    return out


def _views(raw: Any, layout: dict) -> dict[str, np.ndarray]:
    mem = np.frombuffer(raw, dtype=np.uint8)
    out = {}
    for name, (shape, dtype, off) in layout.items():
        if name == "_total":
            continue
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        out[name] = mem[off : off + nbytes].view(dtype).reshape(shape)
    return out


def _buffers(v: dict[str, np.ndarray], sl: slice = slice(None)) -> VecBuffers:
    return VecBuffers(
        obs=v["obs"][sl],
        state=v["state"][sl],
        reward=v["reward"][sl],
        terminated=v["terminated"][sl],
        truncated=v["truncated"][sl],
        final_obs=v["final_obs"][sl],
        final_state=v["final_state"][sl],
        action_mask=v["action_mask"][sl],
        final_action_mask=v["final_action_mask"][sl],
        alive=v["alive"][sl],
    )


def _worker_main(conn, raw, mem_layout, cfg, env_layout, lo, hi) -> None:  # pragma: no cover
    """Subprocess: step envs ``lo..hi-1`` on command, writing into shared memory."""
    group = None
    try:
        v = _views(raw, mem_layout)
        envs = [build_env(cfg) for _ in range(hi - lo)]
        group = _EnvGroup(envs, env_layout, _buffers(v, slice(lo, hi)))
        actions = v["actions"][lo:hi]
        conn.send_bytes(b"ok")
        while True:
            msg = conn.recv()
            try:
                if msg == "step":
                    group.step(actions)
                elif isinstance(msg, tuple) and msg[0] == "reset":
                    group.reset(msg[1])
                elif msg == "snapshot":
                    conn.send_bytes(b"S" + pickle.dumps(group.snapshot()))
                    continue
                elif isinstance(msg, tuple) and msg[0] == "restore":
                    group.restore(msg[1])
                elif msg == "close":
                    group.close()
                    group = None
                    conn.send_bytes(b"ok")
                    return
                conn.send_bytes(b"ok")
            except Exception:
                conn.send_bytes(b"E" + traceback.format_exc().encode())
    except (EOFError, KeyboardInterrupt, BrokenPipeError):
        pass
    except Exception:
        with contextlib.suppress(Exception):
            conn.send_bytes(b"E" + traceback.format_exc().encode())
    finally:
        if group is not None:
            group.close()


def _shutdown(procs: list, conns: list) -> None:
    for c in conns:
        with contextlib.suppress(Exception):
            c.send("close")
    for c in conns:
        try:
            if c.poll(5):
                c.recv_bytes()
        except Exception:
            pass
        with contextlib.suppress(Exception):
            c.close()
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.terminate()
            p.join(timeout=5)


# ---------------------------------------------------------------------- the VecEnv
class PettingZooVecEnv:
    """``num_envs`` auto-resetting copies of a PettingZoo env (a :class:`VecEnv`).

    See the module docstring for what is supported and how outputs are laid out.
    Construction builds (and resets) one env to check it, so a bad ``cfg`` fails here
    with a ValueError naming the field.
    """

    def __init__(self, cfg: Any = None, num_envs: int = 1, seed: int | None = None) -> None:
        if not isinstance(num_envs, (int, np.integer)) or isinstance(num_envs, bool) or (
            num_envs < 1
        ):
            raise ValueError(f"num_envs = {num_envs!r} is invalid: must be an int >= 1")
        self.cfg = cfg = as_config(cfg)
        self.num_envs = b = int(num_envs)
        self._closed = False
        probe = build_env(cfg)
        try:
            self.layout = lay = inspect_env(probe, cfg, env_seeds(seed, 1)[0])
        except BaseException:
            probe.close()
            raise
        self.spec = EnvSpec(
            agents=lay.agents,
            obs_shape=lay.obs_shape,
            state_dim=lay.state_dim,
            n_actions=lay.n_actions,
            obs_dtype=lay.obs_dtype,
            has_action_mask=lay.mask_mode is not None,
            state_is_concat_obs=not lay.state_from_env,
        )
        self.num_workers = w = min(int(cfg.num_workers), b)
        self._group: _EnvGroup | None = None
        self._conns: list = []
        self._procs: list = []
        if w == 0:
            envs = [probe]
            try:
                envs += [build_env(cfg) for _ in range(b - 1)]
            except BaseException:
                for e in envs:
                    e.close()
                raise
            self.buf = VecBuffers.allocate(self.spec, b)
            self._group = _EnvGroup(envs, lay, self.buf)
            self._actions = None
        else:
            probe.close()
            self._start_workers(w)
        self.reset(seed)

    # -- workers
    def _start_workers(self, w: int) -> None:
        ctx = mp.get_context("spawn")
        mem_layout = _buffer_layout(self.spec, self.num_envs)
        self._raw = raw = ctx.RawArray("B", mem_layout["_total"][2])
        v = _views(raw, mem_layout)
        self.buf = _buffers(v)
        self.buf.action_mask[:] = True
        self.buf.final_action_mask[:] = True
        self.buf.alive[:] = True
        self._actions = v["actions"]
        bounds = np.linspace(0, self.num_envs, w + 1).round().astype(int)
        self._chunks = [(int(bounds[i]), int(bounds[i + 1])) for i in range(w)]
        for lo, hi in self._chunks:
            parent, child = ctx.Pipe()
            p = ctx.Process(
                target=_worker_main,
                args=(child, raw, mem_layout, self.cfg, self.layout, lo, hi),
                daemon=True,
                name=f"marl-env-worker-{lo}-{hi}",
            )
            p.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(p)
        self._finalizer = weakref.finalize(self, _shutdown, self._procs, self._conns)
        try:
            self._gather("starting")
        except BaseException:
            self.close()
            raise

    def _gather(self, what: str) -> list[bytes]:
        """Every worker's reply (b"ok", or b"S" + payload); RuntimeError if one failed."""
        err, replies = None, []
        for k, c in enumerate(self._conns):
            try:
                msg = c.recv_bytes()
            except (EOFError, OSError):
                lo, hi = self._chunks[k]
                err = err or f"env worker {k} (envs {lo}..{hi - 1}) died while {what}"
                continue
            replies.append(msg)
            if msg != b"ok" and msg[:1] != b"S" and err is None:
                lo, hi = self._chunks[k]
                err = f"env worker {k} (envs {lo}..{hi - 1}) failed while {what}:\n"
                err += msg[1:].decode(errors="replace")
        if err is not None:
            raise RuntimeError(err)
        return replies

    # -- VecEnv API
    def reset(self, seed: int | None = None) -> VecBuffers:
        """Start a new episode in every env; ``seed`` seeds env b with env_seeds(seed, B)[b]."""
        self._check_open()
        seeds = env_seeds(seed, self.num_envs)
        if self._group is not None:
            self._group.reset(seeds)
        else:
            for c, (lo, hi) in zip(self._conns, self._chunks, strict=True):
                c.send(("reset", seeds[lo:hi]))
            self._gather("resetting")
        return self.buf

    def step(self, actions: np.ndarray) -> VecBuffers:
        """Apply ``actions`` [B, N] to every env, auto-resetting ended ones."""
        self._check_open()
        actions = np.asarray(actions)
        if actions.ndim != 2 or actions.shape[0] != self.num_envs:
            raise ValueError(
                f"actions must have shape [{self.num_envs}, {self.spec.n_agents}] (envs x "
                f"agents {list(self.spec.agents)}), got {tuple(actions.shape)}"
            )
        check_actions(actions, self.spec, self.buf.action_mask)
        if self._group is not None:
            self._group.step(actions)
        else:
            self._actions[:] = actions
            for c in self._conns:
                c.send("step")
            self._gather("stepping")
        return self.buf

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the env has been closed")

    def close(self) -> None:
        """Close the envs and stop the workers (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._group is not None:
            self._group.close()
        if self._procs:
            self._finalizer()


class ResumablePettingZooVecEnv(PettingZooVecEnv):
    """A :class:`PettingZooVecEnv` whose envs can be snapshotted: a ``ResumableVecEnv``.

    :func:`make_pettingzoo_vec_env` returns this class when :func:`snapshot_error` finds
    the configured env snapshottable (MPE, SISL pursuit, the matrix games, any env whose
    objects pickle), and a plain :class:`PettingZooVecEnv` otherwise (SuperSuit's
    closure-based wrappers, ALE emulators), which has no ``get_state``: a resumed run
    then starts fresh episodes, as the ``ResumableVecEnv`` protocol says.
    """

    def get_state(self) -> dict[str, Any]:
        """Every env's exact state (:func:`snapshot_env` bytes) and the buffers' contents."""
        self._check_open()
        try:
            if self._group is not None:
                envs = self._group.snapshot()
            else:
                for c in self._conns:
                    c.send("snapshot")
                envs = [e for r in self._gather("saving state") for e in pickle.loads(r[1:])]
        except (pickle.PicklingError, TypeError, AttributeError) as e:
            raise NotImplementedError(
                f"env {self.cfg.id} cannot be saved for an exact resume: "
                f"{type(e).__name__}: {e}") from e
        return {
            "id": self.cfg.id,
            "config": self._resume_config(),
            "num_envs": self.num_envs,
            "envs": envs,
            "buf": buffers_state(self.buf),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_state` output into this env (same config and ``num_envs``)."""
        self._check_open()
        mine = self._resume_config()
        theirs = state.get("config", {})
        if state.get("num_envs") != self.num_envs or theirs != mine:
            diff = sorted(k for k in mine if mine[k] != theirs.get(k))
            raise ValueError(
                f"saved PettingZoo env state is for env.id={state.get('id')!r}, "
                f"num_envs={state.get('num_envs')} (config fields differing: "
                f"{diff or 'none'}); this env is {self.cfg.id!r} with num_envs={self.num_envs}")
        envs = state["envs"]
        if self._group is not None:
            self._group.restore(envs)
        else:
            for c, (lo, hi) in zip(self._conns, self._chunks, strict=True):
                c.send(("restore", envs[lo:hi]))
            self._gather("restoring state")
        restore_buffers(self.buf, state["buf"])

    def _resume_config(self) -> dict[str, Any]:
        """The config fields a saved state must match (num_workers may differ)."""
        out = dataclasses.asdict(self.cfg)
        out.pop("num_workers")
        return out


def make_pettingzoo_vec_env(cfg: Any, num_envs: int, seed: int | None = None) -> PettingZooVecEnv:
    """Registry factory of the ``pettingzoo`` env: resumable when the env can be saved."""
    cfg = as_config(cfg)
    cls = ResumablePettingZooVecEnv if snapshot_error(cfg) is None else PettingZooVecEnv
    return cls(cfg, num_envs=num_envs, seed=seed)
