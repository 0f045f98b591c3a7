"""Checkpoints: full training state, verified by a checksum, written atomically, the
last K kept.

A checkpoint ``checkpoints/ckpt_<env_steps>.pt`` is one header line, ``MARLCKPT 2
sha256=<hex> bytes=<n>``, followed by the ``torch.save`` payload of a dict (see
:func:`marl.train.Trainer.state` for the keys). It is written to a temporary file in the
same directory, flushed to disk and renamed into place, so a run killed mid-write leaves
the previous checkpoint intact; the checksum catches a file changed or cut afterwards.
Files of format 1 (a bare ``torch.save``, no checksum) load only with
``checkpoint.allow_unverified=true``: nothing can tell them from a damaged file.
"""

from __future__ import annotations

import hashlib
import io
import re
import sys
from pathlib import Path
from typing import Any

import torch

from marl.io.files import write_bytes_atomic

FORMAT_VERSION = 2
READS = (1, 2)
MAGIC = b"MARLCKPT"
_NAME = re.compile(r"^ckpt_(\d+)\.pt$")
_HEADER = re.compile(rb"^MARLCKPT (\d+) sha256=([0-9a-f]{64}) bytes=(\d+)\n")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, truncated or from an incompatible run."""


def checkpoint_path(ckpt_dir: Path, env_steps: int) -> Path:
    return ckpt_dir / f"ckpt_{env_steps:012d}.pt"


def list_checkpoints(ckpt_dir: Path) -> list[Path]:
    """Checkpoints in ``ckpt_dir``, oldest first."""
    if not ckpt_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def save_checkpoint(ckpt_dir: Path, env_steps: int, state: dict[str, Any], keep: int) -> Path:
    """Write ``state`` atomically as the checkpoint at ``env_steps``; prune to ``keep``
    files, set-aside ``.corrupt`` ones counted: the oldest ``.corrupt`` go first, then
    the oldest checkpoints, never the one just written. A full disk raises
    :class:`marl.io.errors.DiskFullError`; older checkpoints stay."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(ckpt_dir, env_steps)
    buf = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, **state}, buf)
    payload = buf.getvalue()
    header = (f"MARLCKPT {FORMAT_VERSION} sha256={hashlib.sha256(payload).hexdigest()} "
              f"bytes={len(payload)}\n").encode()
    write_bytes_atomic(path, header + payload)
    older = [p for p in list_checkpoints(ckpt_dir) if p != path]
    corrupt = sorted(ckpt_dir.glob("*.corrupt"))  # names carry zero-padded env steps
    for old in [*corrupt, *older][:max(0, len(corrupt) + len(older) + 1 - keep)]:
        old.unlink(missing_ok=True)
    return path


UNVERIFIED = "checkpoint.allow_unverified=true"
"""How a user loads a checkpoint without a header (format 1: no checksum to verify)."""


def _payload(path: Path, allow_unverified: bool = False) -> bytes:
    """The verified torch payload of ``path`` (format 2), or, with ``allow_unverified``,
    the whole file of a headerless one (format 1, or a header cut off)."""
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        if not allow_unverified:
            raise CheckpointError(
                f"checkpoint {path} has no header line, so nothing verifies it (marl 0.1's "
                f"format 1, or a damaged file); if you trust it, pass {UNVERIFIED}")
        return data
    m = _HEADER.match(data)
    if m is None:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated (bad header)")
    payload, size = data[m.end():], int(m.group(3))
    if len(payload) != size:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({len(payload)} "
                              f"of {size} bytes)")
    if hashlib.sha256(payload).hexdigest() != m.group(2).decode():
        raise CheckpointError(f"checkpoint {path} is corrupt (checksum mismatch: changed "
                              "after it was written)")
    return payload


def load_checkpoint(path: Path, allow_unverified: bool = False) -> dict[str, Any]:
    """Load a checkpoint, turning every way it can be broken into a CheckpointError (a
    headerless one too, unless ``allow_unverified``)."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    payload = _payload(path, allow_unverified)
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)
    except ModuleNotFoundError as e:
        raise CheckpointError(
            f"checkpoint {path} was written by another version of marl (it needs module "
            f"{e.name}, which this one lacks): evaluate or resume it with that version"
        ) from e
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a broken file
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict) or "format_version" not in state:
        raise CheckpointError(f"checkpoint {path} is not a marl checkpoint")
    if state["format_version"] not in READS:
        raise CheckpointError(
            f"checkpoint {path} has format {state['format_version']}, written by a newer "
            f"marl; this one reads formats {READS[0]}-{READS[-1]}: upgrade marl")
    return state


def load_newest(ckpt_dir: Path, strict: bool = False, skipped: list[Path] | None = None,
                allow_unverified: bool = False) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint of ``ckpt_dir`` that loads, and its state (None if there
    is none). A broken newer one is skipped with a warning naming it and why (and added
    to ``skipped``); with ``strict`` it is an error instead. When none loads, the one
    error says why the newest did not (no warnings before it)."""
    found = list_checkpoints(ckpt_dir)
    errors: list[str] = []
    for path in reversed(found):
        try:
            state = load_checkpoint(path, allow_unverified)
        except CheckpointError as e:
            if strict:
                raise CheckpointError(f"{e}; checkpoint.strict=true: not falling back to an "
                                      "older checkpoint") from e
            errors.append(f"warning: skipped {path.name}: {e}")
            if skipped is not None:
                skipped.append(path)
            continue
        for line in errors:
            print(line, file=sys.stderr)
        return path, state
    if found:
        errors = [e.split(": ", 2)[2] for e in errors]
        raise CheckpointError(f"no intact checkpoint in {ckpt_dir}: {errors[0]}")
    return None


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    found = list_checkpoints(ckpt_dir)
    return found[-1] if found else None


def set_aside(paths: list[Path]) -> None:
    """Rename broken checkpoints to ``<name>.corrupt`` (kept for a look, never loaded)."""
    for p in paths:
        p.replace(p.with_name(p.name + ".corrupt"))
