"""SuperSuit's env wrappers by name: what an ``env.wrappers`` entry means.

Light on purpose (the standard library; SuperSuit is imported when a wrapper is looked
up), so the PettingZoo config checks its ``wrappers`` at start without importing the
adapter (:mod:`marl.envs.pettingzoo.resolve` applies them when it builds an env).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from typing import Any

from marl.envs.checks import plain

_WRAPPER_NAME = re.compile(r"^[a-z][a-z0-9_]*_v\d+$")
_NOT_WRAPPERS = ("vec",)  # SuperSuit's vector-env constructors are not env wrappers


def supersuit_wrappers() -> dict[str, Callable]:
    """SuperSuit's env wrappers by versioned name (vector-env constructors excluded)."""
    import supersuit  # supersuit: imported on use, not by import marl.envs

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
    entry = plain(entry)
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
