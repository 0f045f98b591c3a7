"""Validation helpers shared by every env: config coercion, number checks, action checks.

Light on purpose (numpy and the standard library only), so config modules can use them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from marl.envs.base import EnvSpec, check_actions


def is_int(v: Any) -> bool:
    """An int or numpy integer, not a bool."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def is_real(v: Any) -> bool:
    """An int, float or numpy number, not a bool."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(
        v, (bool, np.bool_)
    )


def check_num_envs(num_envs: Any) -> int:
    """``num_envs`` as an int; ValueError unless it is an int >= 1."""
    if not is_int(num_envs) or num_envs < 1:
        raise ValueError(f"num_envs = {num_envs!r} is invalid: must be an int >= 1")
    return int(num_envs)


def plain(x: Any) -> Any:
    """``x`` with every mapping turned into a dict and every sequence into a list."""
    if isinstance(x, (str, bytes)):
        return x
    if type(x).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(x, resolve=True)
    if isinstance(x, Mapping):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    return x


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def as_config(cfg: Any, cls: type, **overrides: Any) -> Any:
    """``cfg`` if it is a ``cls``; a ``cls`` built from a dict / DictConfig of its fields;
    then with keyword ``overrides`` of its fields.

    ``None`` gives the defaults. In a mapping, keys starting with ``_`` and a ``name``
    (the registry key) that is not a field are ignored; any other unknown key, or an
    unknown override, is a TypeError naming it and the valid fields.
    """
    names = _fields(cls)
    unknown = sorted(set(overrides) - names)
    if cfg is None:
        cfg = cls()
    elif isinstance(cfg, Mapping) or (hasattr(cfg, "keys") and not isinstance(cfg, cls)):
        keys = [str(k) for k in cfg]
        unknown += sorted(k for k in keys if k not in names and k != "name" and k[:1] != "_")
        if not unknown:
            cfg = cls(**{k: plain(cfg[k]) for k in keys if k in names})
    elif not isinstance(cfg, cls):
        raise TypeError(f"expected a {cls.__name__} or a mapping of its fields, got {type(cfg)}")
    if unknown:
        raise TypeError(f"unknown {cls.__name__} field(s) {unknown}; valid: {sorted(names)}")
    return dataclasses.replace(cfg, **overrides) if overrides else cfg


def check_batch_actions(actions: Any, spec: EnvSpec, num_envs: int,
                        mask: np.ndarray | None = None) -> np.ndarray:
    """``actions`` as an array of shape [B, N], validated with :func:`check_actions`."""
    actions = np.asarray(actions)
    if actions.shape != (num_envs, spec.n_agents):
        raise ValueError(
            f"actions must have shape [{num_envs}, {spec.n_agents}] (envs x agents "
            f"{list(spec.agents)}), got {tuple(actions.shape)}"
        )
    check_actions(actions, spec, mask)
    return actions


def dict_actions(
    actions: Any, possible: list[str], live: list[str], n_actions: int, out: np.ndarray
) -> np.ndarray:
    """Write a PettingZoo actions dict into ``out`` ([N] ints, in ``possible`` order).

    Raises TypeError for a non-dict and ValueError naming the agent and the action for an
    unknown agent, a live agent without an action or an action outside ``0..n_actions-1``.
    """
    if not isinstance(actions, Mapping):
        raise TypeError(f"actions must be a dict agent -> action, got {type(actions)}")
    for agent, action in actions.items():
        if agent not in possible:
            raise ValueError(f"unknown agent {agent!r} (action {action!r}): agents are {live}")
        a = action.item() if isinstance(action, np.ndarray) and action.size == 1 else action
        if not is_int(a) or not 0 <= a < n_actions:
            raise ValueError(
                f"invalid action {a!r} for agent {agent!r}: allowed actions are "
                f"0..{n_actions - 1}"
            )
        out[possible.index(agent)] = a
    missing = [a for a in live if a not in actions]
    if missing:
        raise ValueError(f"no action given for agent(s) {missing}")
    return out


def check_render_mode(render_mode: str | None, modes: list[str]) -> None:
    """ValueError unless ``render_mode`` is None or one of ``modes``."""
    if render_mode is not None and render_mode not in modes:
        raise ValueError(f"render_mode={render_mode!r} is invalid: must be None or one of {modes}")


def as_list(v: Any) -> list:
    """``v`` as a list if it is a sequence (list, tuple, numpy array, OmegaConf ListConfig),
    else ``[]``; strings and mappings are not sequences here."""
    if isinstance(v, (str, bytes, Mapping)):
        return []
    try:
        return list(v)
    except TypeError:
        return []


def need(ok: bool, name: str, value: Any, must: str) -> None:
    """Raise ``ValueError("env.<name> = <value> is invalid: <must>")`` unless ``ok``."""
    if not ok:
        raise ValueError(f"env.{name} = {value!r} is invalid: {must}")


def need_int(cfg: Any, name: str, lo: int, optional: bool = False, note: str = "") -> None:
    """``cfg.<name>`` must be an int >= ``lo`` (or None when ``optional``)."""
    v = getattr(cfg, name)
    must = f"must be {'None or ' if optional else ''}an int >= {lo}{note}"
    need((optional and v is None) or (is_int(v) and v >= lo), name, v, must)


def need_number(cfg: Any, name: str, lo: float, hi: float = math.inf, hi_open: bool = False
                ) -> None:
    """``cfg.<name>`` must be a finite number in ``[lo, hi]`` (``[lo, hi)`` if ``hi_open``)."""
    v = getattr(cfg, name)
    ok = is_real(v) and math.isfinite(v) and lo <= v and (v < hi if hi_open else v <= hi)
    span = f">= {lo:g}" if hi == math.inf else f"in [{lo:g}, {hi:g}{')' if hi_open else ']'}"
    need(ok, name, v, f"must be a finite number {span}")


def need_choice(cfg: Any, name: str, choices: tuple, optional: bool = False) -> None:
    """``cfg.<name>`` must be one of ``choices`` (or None when ``optional``)."""
    v = getattr(cfg, name)
    need((optional and v is None) or v in choices, name, v,
         f"choose {'None or ' if optional else ''}one of {list(choices)}")
