"""Building blocks of the config schemas: the one error type, range checks, and the lookup
of a name in one of the project's tables -- or, written ``module:attr``, in the user's
own code (a plugin), so a new idea needs no edit of ``marl/``.

Plugins import by module name. ``plugin_path`` (a top-level config field) lists the
directories put on ``sys.path`` first; it is recorded, absolute, in the run's config, so
a resumed run, ``marl.evaluate`` and every sweep worker import the plugin the same way.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any


class ConfigError(ValueError):
    """A configuration value is out of range or unknown."""


def check(ok: bool, name: str, value: Any, allowed: str) -> None:
    """Raise :class:`ConfigError` ``"<name> = <value> is invalid: <allowed>"`` unless ok."""
    if not ok:
        raise ConfigError(f"{name} = {value!r} is invalid: {allowed}")


def is_plugin(name: str) -> bool:
    """``module:attr`` names a plugin; a bare word names a table row."""
    return isinstance(name, str) and ":" in name


def add_plugin_path(paths: Iterable[str]) -> None:
    """Put each directory of ``plugin_path`` on ``sys.path`` (once, in front)."""
    for p in paths:
        p = os.path.abspath(p)
        if p not in sys.path:
            sys.path.insert(0, p)


def load_plugin(path: str, field: str) -> Any:
    """The object ``module:attr`` names. ``field`` (e.g. ``algo.advantage``) is named in
    the one-line :class:`ConfigError` when the module cannot be imported or lacks attr."""
    module, _, attr = path.partition(":")
    if not module or not attr:
        raise ConfigError(f"{field} = {path!r} is invalid: a plugin is written module:attr")
    try:
        mod = importlib.import_module(module)
    except Exception as e:  # noqa: BLE001 - any import failure is the user's to see
        raise ConfigError(f"{field} = {path!r}: cannot import module {module!r} "
                          f"({type(e).__name__}: {e}); is its directory in plugin_path?"
                          ) from e
    try:
        return getattr(mod, attr)
    except AttributeError as e:
        raise ConfigError(f"{field} = {path!r}: module {module!r} has no {attr!r}") from e


def lookup(table: Mapping[str, Any], name: str, field: str) -> Any:
    """The row ``name`` of ``table``, or the plugin ``name`` when it is ``module:attr``.
    An unknown name is refused listing the known ones."""
    if is_plugin(name):
        return load_plugin(name, field)
    if name not in table:
        raise ConfigError(f"{field} = {name!r} is invalid: choose one of {list(table)} "
                          "or a plugin module:attr")
    return table[name]


def check_finite_floats(obj: Any, prefix: str) -> None:
    """Every float field of the dataclass ``obj`` (and of the dataclasses it holds) is
    finite: ``algo.critic_lr=inf`` is refused at start, not at the first update."""
    import dataclasses
    import math

    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            check_finite_floats(v, f"{prefix}.{f.name}")
        elif isinstance(v, float):
            check(math.isfinite(v), f"{prefix}.{f.name}", v, "must be a finite number")
