"""Where a run came from: marl's version, its git commit, and the run-directory format.

Recorded in ``provenance.json`` in the run directory, in ``summary.json`` and in the W&B
run config. :data:`RUN_FORMAT` numbers the layout of a run directory (files, checkpoint
format, config keys); a run written by a newer format is refused with one line.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

RUN_FORMAT = 2
"""1: before provenance.json (checkpoints without checksum); 2: provenance.json,
checksummed checkpoints, the run directory lock."""

NAME = "provenance.json"


def marl_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("marl")
    except PackageNotFoundError:
        import marl

        return getattr(marl, "__version__", None)


def git_commit(src: Path | None = None) -> dict[str, Any] | None:
    """``{"commit": sha, "dirty": bool}`` of the checkout holding marl's source, None
    when it is not a git checkout (an installed wheel) or git is missing."""
    src = src or Path(__file__).resolve().parent.parent
    try:
        run = lambda *a: subprocess.run(["git", *a], cwd=src, capture_output=True,  # noqa: E731
                                        text=True, timeout=10)
        head = run("rev-parse", "HEAD")
        if head.returncode:
            return None
        dirty = run("status", "--porcelain", "--untracked-files=no")
        return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.TimeoutExpired):
        return None


def provenance() -> dict[str, Any]:
    return {"marl_version": marl_version(), "git": git_commit(), "run_format": RUN_FORMAT}


def check_run_format(run_dir: Path) -> dict[str, Any] | None:
    """The run's recorded provenance (None for a run of format 1, which this marl still
    reads); ValueError, one line, if a newer marl wrote it."""
    path = run_dir / NAME
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
    except ValueError:
        return None
    fmt = info.get("run_format", RUN_FORMAT)
    if isinstance(fmt, int) and fmt > RUN_FORMAT:
        raise ValueError(
            f"{run_dir} was written by marl {info.get('marl_version')} (run format {fmt}); "
            f"this marl {marl_version()} reads run formats up to {RUN_FORMAT}: upgrade marl")
    return info


def record(run_dir: Path, extra: dict[str, Any] | None = None) -> None:
    """``provenance.json``: what first wrote the run (kept), what last started it, and
    ``extra`` (what this start says of the run: a reference preset's deviations)."""
    from marl.io.files import write_json_atomic

    now = provenance()
    write_json_atomic(run_dir / NAME, {**(check_run_format(run_dir) or now), **(extra or {}),
                                       "last_started_by": now})
