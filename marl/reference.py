"""Presets that claim another code's settings (``reference``, conf/reference/*.yaml).

A reference preset (JaxMARL's MAPPO and IPPO on SMAX: ``mappo_smax_<map>_jaxmarl``)
selects a ``reference`` entry: the reference's name and ``pinned``, the composed keys
that make it that reference and their values. A run composed with something that moves
one of them still runs; it says so in one line at start, and its ``provenance.json``
records ``reference_deviations`` (the keys), so a result is never mistaken for one at
the reference's settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

_MISSING = object()


@dataclass
class ReferenceConfig:
    """``reference``: which code's settings a preset claims (conf/reference/*.yaml)."""

    name: str | None = None
    """The reference (its script and commit); null: the run claims none."""
    pinned: dict[str, Any] = field(default_factory=dict)
    """Composed key (``algo.ppo.clip``) -> the reference's value."""


def _plain(value: Any) -> Any:
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def deviations(cfg: DictConfig) -> dict[str, tuple[Any, Any]]:
    """``{key: (this run's value, the reference's)}`` of every pinned key that differs
    (a key the run does not have at all counts as differing)."""
    ref = cfg.get("reference")
    if ref is None or not ref.get("name"):
        return {}
    out = {}
    for key, theirs in ref.get("pinned", {}).items():
        ours = _plain(OmegaConf.select(cfg, key, default=_MISSING))
        theirs = _plain(theirs)
        if ours is _MISSING or ours != theirs:
            out[key] = (None if ours is _MISSING else ours, theirs)
    return out


def describe(cfg: DictConfig, found: dict[str, tuple[Any, Any]]) -> str:
    """The one line said at start."""
    moved = ", ".join(f"{k}={ours!r} (reference {theirs!r})"
                      for k, (ours, theirs) in found.items())
    return (f"{cfg.name} is a reference preset ({cfg.reference.name}), and this run moves "
            f"{len(found)} of its settings: {moved}; provenance.json lists them under "
            "reference_deviations")
