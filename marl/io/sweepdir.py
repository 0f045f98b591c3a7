"""Which sweep directory a multirun with ``resume=true`` continues.

A sweep's default directory carries its launch time (``multirun/<name>/<stamp>``), so
the same command run again would start a new sweep. With ``resume=true`` and no
``hydra.sweep.dir`` given, :func:`previous_sweep` finds the newest sweep of the same
name launched with the same task overrides (``resume`` aside; Hydra keeps them in
``<sweep dir>/multirun.yaml``), and the multirun continues there: each job's directory
is where it was, so a finished job is skipped, a stopped one resumes from its
checkpoint, and one never started starts.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf


def _task_overrides(overrides: list[str]) -> list[str]:
    """The overrides that make the sweep's jobs (not Hydra's, not ``resume``), sorted."""
    def key(o: str) -> str:
        return o.lstrip("+~").partition("=")[0]

    return sorted(o for o in overrides
                  if key(o) != "resume" and not key(o).startswith(("hydra.", "hydra/")))


def previous_sweep(new_dir: Path, overrides: list[str]) -> Path | None:
    """The newest sibling of ``new_dir`` (the directory a new sweep would take) whose
    ``multirun.yaml`` lists the same task overrides as ``overrides``; None if there is
    none."""
    parent = new_dir.parent
    if not parent.is_dir():
        return None
    want = _task_overrides(overrides)
    for d in sorted((p for p in parent.iterdir() if (p / "multirun.yaml").is_file()),
                    reverse=True):  # the stamps sort by launch time
        try:
            got = list(OmegaConf.load(d / "multirun.yaml").hydra.overrides.task)
        except Exception:  # noqa: BLE001 - not a sweep we can read: not ours to continue
            continue
        if _task_overrides(got) == want:
            return d
    return None
