"""Which env ``env.id`` names, the SuperSuit wrappers ``env.wrappers`` lists, and building one.

See :mod:`marl.envs.pettingzoo` for the accepted forms of ``id`` and ``wrappers`` and the
defaults some PettingZoo families need (Atari ROMs, butterfly render mode).
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import os
import pkgutil
import types
from collections.abc import Callable
from typing import Any

from marl.envs.configs import PettingZooEnvConfig
from marl.envs.wrapper_names import resolve_wrapper, supersuit_wrappers

__all__ = ["ale_roms_dir", "build_env", "factory_kwargs", "resolve_factory", "resolve_wrapper",
           "supersuit_wrappers", "unsupported"]

# ---------------------------------------------------------------------- building one env
def _bad_id(env_id: str, why: str) -> ValueError:
    return ValueError(
        f"env.id = {env_id!r} is invalid: {why} (env.id is '<module>:<factory>', e.g. "
        "'mpe2:simple_spread_v3', or a PettingZoo registry id such as "
        "'butterfly/pistonball-v6')"
    )


def unsupported(env_id: str, why: str) -> ValueError:
    return ValueError(f"env.id = {env_id!r} is not supported as configured: {why}")


def _names_in(module: types.ModuleType) -> list[str]:
    names = {n for n in dir(module) if not n.startswith("_")}
    if hasattr(module, "__path__"):
        names |= {m.name for m in pkgutil.iter_modules(module.__path__)}
    return sorted(names)


def _registry_factory(env_id: str, parallel: bool) -> tuple[Callable[..., Any], str]:
    # pettingzoo: imported when an env is built, not on import
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


def _import(env_id: str, name: str, missing_ok: bool = False) -> types.ModuleType | None:
    """Module ``name`` (None if it does not exist and ``missing_ok``); else ValueError."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name is not None and (name == e.name or name.startswith(e.name + ".")):
            if missing_ok:
                return None
            raise _bad_id(env_id, f"no module named {e.name!r}") from e
        raise _bad_id(env_id, f"importing {name!r} failed: {e} (a dependency is missing)") from e
    except Exception as e:
        raise _bad_id(env_id, f"importing {name!r} failed: {type(e).__name__}: {e}") from e


def resolve_factory(env_id: str, parallel: bool = True) -> tuple[Callable[..., Any], str]:
    """The callable that ``env.id`` names and the module it comes from.

    Raises ValueError naming the problem when ``env.id`` does not name an env factory.
    """
    if ":" not in env_id:
        return _registry_factory(env_id, parallel)
    mod_name, attr = env_id.split(":", 1)
    obj: Any = _import(env_id, mod_name)
    path = mod_name
    for part in attr.split("."):
        try:
            nxt = getattr(obj, part, None)
        except Exception as e:  # e.g. PettingZoo's DeprecatedEnv for an old version
            raise _bad_id(env_id, f"{path}.{part}: {type(e).__name__}: {e}") from e
        if nxt is None and isinstance(obj, types.ModuleType):
            nxt = _import(env_id, f"{path}.{part}", missing_ok=True)
        if nxt is None:
            pool = _names_in(obj) if isinstance(obj, types.ModuleType) else dir(obj)
            close = difflib.get_close_matches(part, pool, n=5, cutoff=0.6)
            hint = f"; close names: {close}" if close else ""
            raise _bad_id(env_id, f"{path!r} has no attribute {part!r}{hint}")
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
    import ale_py  # ale_py: only for PettingZoo's Atari envs

    return os.path.join(os.path.dirname(os.path.abspath(ale_py.__file__)), "roms")


def factory_kwargs(cfg: PettingZooEnvConfig, origin: str) -> dict[str, Any]:
    """``cfg.kwargs`` plus the Atari and butterfly defaults (:mod:`marl.envs.pettingzoo`);
    ``origin`` is the module the factory comes from (see :func:`resolve_factory`)."""
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
    # pettingzoo: imported when an env is built, not on import
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
    # pettingzoo: imported when an env is built, not on import
    from pettingzoo.utils.conversions import aec_to_parallel, turn_based_aec_to_parallel

    env = _check_kind(_call_factory(cfg), cfg)
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


def _call_factory(cfg: PettingZooEnvConfig):
    """The env the factory of ``cfg.id`` returns for ``cfg.kwargs``; a missing
    dependency or bad kwargs become one-line ValueErrors."""
    factory, origin = resolve_factory(cfg.id, cfg.parallel)
    kwargs = factory_kwargs(cfg, origin)
    try:
        return factory(**kwargs)
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


def _check_kind(env, cfg: PettingZooEnvConfig):
    """``env`` if it is the API ``cfg.parallel`` asks for; else closed and refused."""
    # pettingzoo: imported when an env is built, not on import
    from pettingzoo import AECEnv, ParallelEnv

    want = ParallelEnv if cfg.parallel else AECEnv
    if isinstance(env, want):
        return env
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
