"""File writers and readers shared by the entry points: atomic bytes and JSON, a
torn-line-tolerant JSON-lines reader, GIF.

Every atomic write goes to a temporary ``.tmp_*`` file in the target's directory and is
renamed into place, so a reader never sees half a file; a temporary left by a killed
write is removed by :func:`remove_temporaries` when the run directory's owner starts.
A full disk becomes :class:`marl.io.errors.DiskFullError` naming the file.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from marl.io.errors import disk_full_names

TEMP_PREFIX = ".tmp_"
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def write_bytes_atomic(path: Path, data: bytes, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file, flushed to disk, and a
    rename; on any failure the temporary is removed and ``path`` is as it was."""
    with disk_full_names(path):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX + path.name + ".")
        try:
            os.fchmod(fd, 0o666 & ~_UMASK)  # as open() would make it, not mkstemp's 0600
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                if fsync:
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def write_json_atomic(path: Path, obj: dict[str, Any]) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (see
    :func:`write_bytes_atomic`)."""
    write_bytes_atomic(path, (json.dumps(obj, indent=2) + "\n").encode(), fsync=False)


def remove_temporaries(*dirs: Path) -> list[Path]:
    """Delete temporaries of killed writes (``.tmp_*``, and the ``*.tmp`` files older
    versions wrote) in ``dirs``; only the run directory's lock holder may call this."""
    gone = []
    for d in dirs:
        if d.is_dir():
            for p in d.iterdir():
                if p.is_file() and (p.name.startswith(TEMP_PREFIX) or p.suffix == ".tmp"):
                    p.unlink(missing_ok=True)
                    gone.append(p)
    return gone


def _split_torn(data: bytes) -> tuple[list[bytes], bytes]:
    """Complete lines of ``data`` and its torn tail (no newline, or not JSON)."""
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when data ends with a newline
    if not tail and lines:
        try:
            json.loads(lines[-1])
        except ValueError:
            tail = lines.pop() + b"\n"
    return lines, tail


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file (``metrics.jsonl``), tolerating a torn last line (a run
    still writing, or killed mid-write): it is left out. A bad line before the last is an
    error naming the file and line."""
    lines, _ = _split_torn(Path(path).read_bytes())
    rows = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise ValueError(f"{path}:{i} is not a JSON row ({e})") from e
        if not isinstance(row, dict) or not isinstance(row.get("env_steps"), int):
            shown = line[:60].decode(errors="replace")
            raise ValueError(f"{path}:{i} is not a metrics row: {shown!r} (an object with "
                             "an integer env_steps)")
        rows.append(row)
    return rows


def cut_jsonl(path: Path, max_env_steps: int) -> None:
    """Keep the rows of ``path`` up to ``max_env_steps`` (resume: later rows will be
    redone) and drop a torn last line, saying so on stderr with the file's name."""
    if not path.exists():
        return
    data = path.read_bytes()
    lines, tail = _split_torn(data)
    if tail:
        print(f"warning: {path}: its last line is torn ({len(tail)} bytes, a write cut "
              "off); dropped it", file=sys.stderr)
    rows = read_jsonl(path)  # raises on a bad line before the last
    keep = [ln for ln in lines if ln.strip()]
    new = b"".join(ln + b"\n" for ln, r in zip(keep, rows, strict=True)
                   if r["env_steps"] <= max_env_steps)
    if new != data:
        write_bytes_atomic(path, new)


def write_gif(path: Path, frames: Sequence[np.ndarray], fps: int) -> Path:
    """Frames (uint8 ``[H, W, 3]``) as a looping GIF at ``fps``; creates the folder."""
    import imageio.v3 as iio

    path.parent.mkdir(parents=True, exist_ok=True)
    with disk_full_names(path):
        iio.imwrite(path, np.stack(frames), duration=1000 / fps, loop=0)
    return path
