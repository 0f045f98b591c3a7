"""Exact snapshots of live PettingZoo envs (pickled with all their state), for resume."""

from __future__ import annotations

import io
import pickle
import zlib
from typing import Any

from gymnasium.utils import EzPickle

from marl.envs.configs import PettingZooEnvConfig
from marl.envs.pettingzoo.resolve import build_env


def _new_instance(cls: type) -> Any:
    return cls.__new__(cls)


def _set_attributes(obj: Any, state: dict[str, Any]) -> None:
    obj.__dict__.update(state)


def _surface_parts(surf: Any) -> tuple:
    """A pygame Surface as (size, flags, depth, masks, colorkey, alpha, zlib'd pixels)."""
    return (surf.get_size(), surf.get_flags(), surf.get_bitsize(), surf.get_masks(),
            surf.get_colorkey(), surf.get_alpha(), zlib.compress(surf.get_buffer().raw, 1))


def _surface_from(size, flags, depth, masks, colorkey, alpha, pixels) -> Any:
    import pygame  # pygame: only in snapshots of envs that draw with it (MPE)

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
    import pygame.freetype  # pygame: only in snapshots of envs that draw with it

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
            import pygame  # pygame: loaded already, the object is one of its
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

