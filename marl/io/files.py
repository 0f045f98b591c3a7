"""Small file writers shared by the entry points: atomic JSON, GIF."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def write_json_atomic(path: Path, obj: dict[str, Any]) -> None:
    """Write ``obj`` as indented JSON to ``path`` via a temporary file and a rename, so a
    reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def write_gif(path: Path, frames: Sequence[np.ndarray], fps: int) -> Path:
    """Frames (uint8 ``[H, W, 3]``) as a looping GIF at ``fps``; creates the folder."""
    import imageio.v3 as iio

    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.stack(frames), duration=1000 / fps, loop=0)
    return path
