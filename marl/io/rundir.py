"""One writer per run directory, and the new-or-resume decision before any write.

:func:`claim` takes a run directory for this process before anything is written into it
(``marl.train`` calls it before Hydra writes ``.hydra/``): it creates the directory with
one ``mkdir`` (of two processes racing for a new directory exactly one creates it), or,
for ``resume=true``, takes the existing one. Either way it then holds an exclusive
``fcntl.flock`` on ``<run dir>/.lock`` for the life of the process: the kernel releases
it on any exit, kill -9 included, so a crashed run's lock is never stale. A second
process fails at once with :class:`RunDirError`, one line naming the directory and the
holder (pid, host, start time, written into the lock file). A refused run writes
nothing: a directory that already holds a run is refused without opening anything for
writing. Only a directory created by this process is ever removed (:meth:`RunDir.discard`).

``flock`` rather than the ``filelock`` package: one call, no dependency, released by the
kernel on death; on NFS (Linux >= 2.6.12) it maps to POSIX locks the server arbitrates.

The default directory names use the ``marl_stamp`` resolver (:func:`marl_stamp`): the
launch time and a short random suffix (``2026-01-31_12-00-00_3fa9c1``), so two runs
started in the same second never share a directory. Resolved once per launch and kept with
the config (as Hydra's ``now``), so a submitit requeue finds the same sweep directory; in
a plain SLURM job (``sbatch``, not an array of a sweep) it is the job id, which a requeue
keeps.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import socket
import sys
import time
from pathlib import Path

LOCK_NAME = ".lock"
RESERVE = 4096
"""Bytes the lock file takes (its holder line padded): freed by :func:`free_reserve` so
that a run stopped by a full disk can still write its ``failed.json``."""


def marl_stamp(kind: str = "run") -> str:
    """``<time>_<6 hex>``; for a run inside a SLURM job, ``slurm<job id>[_<task>]``."""
    job = os.environ.get("SLURM_JOB_ID")
    if kind == "run" and job and "SUBMITIT_EXECUTOR" not in os.environ:
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        return f"slurm{job}" + (f"_{task}" if task else "")
    return f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_{secrets.token_hex(3)}"


def register_stamp_resolver() -> None:
    """Make ``${marl_stamp:run}`` / ``${marl_stamp:sweep}`` resolvable (cached per launch)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("marl_stamp"):
        OmegaConf.register_new_resolver("marl_stamp", marl_stamp, use_cache=True)


class RunDirError(RuntimeError):
    """This process may not use the run directory (another holds it, or it holds a run
    and resume was not asked for). Nothing was written."""


class LockLost(RuntimeError):
    """A live run's lock file was deleted and another process holds the directory now:
    this run stops at once and writes nothing more there (exit 1)."""


def holder(run_dir: Path) -> str | None:
    """Who holds ``run_dir``'s lock ("pid 12 on host h since ..."), None if no one."""
    path = run_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    except BlockingIOError:
        return _describe(path)
    finally:
        os.close(fd)


def _describe(lock_path: Path) -> str:
    starting = "another process (starting: it has not written its pid yet)"
    try:
        info = json.loads(lock_path.read_text())
        pid, host = int(info["pid"]), info["host"]
    except (OSError, ValueError, KeyError, TypeError):
        return starting
    if host == socket.gethostname():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:  # the pid of an earlier holder
            return starting
        except PermissionError:
            pass
    return f"pid {pid} on host {host} (since {info.get('since')})"


def holds_run(run_dir: Path) -> bool:
    """Anything in ``run_dir`` but its lock file: a run (or part of one) lives there."""
    return any(p.name != LOCK_NAME for p in run_dir.iterdir())


RUN_FILES = (".hydra", "metrics.jsonl", "checkpoints", "summary.json", "failed.json",
             "provenance.json", "train.log")
"""What a run directory holds (any one of them: a run, or the start of one, lives there)."""


def check_not_foreign(run_dir: Path) -> None:
    """RunDirError if ``run_dir`` holds files but none of a run's (:data:`RUN_FILES`): a
    folder of the user's (``hydra.run.dir=`` empty is the current directory), which a
    run must neither fill nor clean (its ``*.tmp`` files are not a killed run's)."""
    entries = sorted(p.name for p in run_dir.iterdir() if p.name != LOCK_NAME)
    if entries and not any((run_dir / n).exists() for n in RUN_FILES):
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise RunDirError(
            f"run directory {run_dir} holds files but no run ({shown}; a run directory "
            "holds .hydra/, metrics.jsonl, checkpoints/): choose a new or empty "
            "hydra.run.dir")


class RunDir:
    """A run directory this process holds the lock of (see the module docstring)."""

    def __init__(self, path: Path, created: list[Path]):
        self.path, self.created = path, created
        self._fd: int | None = None

    def lock(self, announce: bool = True) -> None:
        """Take the exclusive lock or raise :class:`RunDirError` naming the holder; with
        ``announce``, write this process's pid and host into the lock file (else call
        :meth:`announce` once the run is accepted: a refused resume changes no byte)."""
        fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunDirError(
                f"run directory {self.path} is in use by {_describe(self.path / LOCK_NAME)}: "
                "wait for that run to end, or choose another hydra.run.dir") from None
        self._fd = fd
        if announce:
            self.announce()

    def announce(self) -> None:
        """Write this process's pid, host and start time into the held lock file."""
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        try:
            os.ftruncate(self._fd, 0)  # type: ignore[arg-type]
            line = (json.dumps(info) + "\n").ljust(RESERVE).encode()
            os.pwrite(self._fd, line, 0)  # type: ignore[arg-type]
        except OSError:  # a full disk: the lock holds all the same
            pass

    def check_held(self) -> None:
        """Before a row or a checkpoint: the lock file is still the one this process
        holds. If it was deleted (or replaced), take a new one when no other process
        holds the directory, else raise :class:`LockLost` naming that process."""
        if self._fd is None:
            return
        mine = os.fstat(self._fd)
        try:
            now = os.stat(self.path / LOCK_NAME)
            if (now.st_ino, now.st_dev) == (mine.st_ino, mine.st_dev):
                return
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None
        try:
            self.lock(announce=True)
        except RunDirError:
            raise LockLost(f"run directory {self.path} lost its lock file and is now held "
                           f"by {_describe(self.path / LOCK_NAME)}: this run stops here "
                           "and writes nothing more into it") from None
        print(f"warning: the lock file of {self.path} was deleted; this run took it "
              "again", file=sys.stderr)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def discard(self) -> None:
        """Release; remove the directory (and parents) only if this process created it."""
        self.release()
        if self.created:
            shutil.rmtree(self.created[0], ignore_errors=True)


def free_reserve(run_dir: Path) -> None:
    """Empty the lock file (still held) to give its bytes back to a full disk."""
    with contextlib.suppress(OSError):
        os.truncate(run_dir / LOCK_NAME, 0)


def _mkdirs(path: Path) -> tuple[bool, list[Path]]:
    """Create ``path`` and missing parents; (whether ``path`` itself was created here,
    the directories created, outermost first)."""
    missing = [p for p in [*reversed(path.parents), path] if not p.exists()]
    created = []
    for p in missing:
        try:
            p.mkdir()
            created.append(p)
        except FileExistsError:
            pass
    return bool(created) and created[-1] == path, created


def _unwritable(path: Path, e: OSError) -> RunDirError:
    """The one line for a run directory this process cannot write (a read-only
    filesystem, an archived run, no permission)."""
    return RunDirError(f"run directory {path} cannot be written ({e.strerror or e}): a run "
                       "needs a writable hydra.run.dir; to evaluate a read-only run, use "
                       "python -m marl.evaluate run_dir=<it>, which writes nothing there")


def claim(path: Path, resume: bool) -> RunDir:
    """Take ``path`` as this process's run directory (see the module docstring); raise
    :class:`RunDirError` (nothing written) if it holds a run and ``resume`` is false, or
    another process holds it."""
    path = Path(os.path.abspath(path))
    if path.exists() and not path.is_dir():
        raise RunDirError(f"run directory {path} exists and is not a directory")
    try:
        new, created = _mkdirs(path)
    except OSError as e:
        raise _unwritable(path, e) from None
    if not new:
        check_not_foreign(path)
    if not new and not resume and holds_run(path):
        who = holder(path)
        raise RunDirError(f"run directory {path} already holds a run"
                          + (f" (in use by {who})" if who else "")
                          + ": pass resume=true to continue it, or choose another "
                          "hydra.run.dir")
    rd = RunDir(path, created)
    try:
        rd.lock(announce=new)
    except RunDirError:
        rd.discard()
        raise
    except OSError as e:  # no lock file can be made: a read-only run directory
        rd.discard()
        raise _unwritable(path, e) from None
    if not new and not resume and holds_run(path):  # a run began there since the check
        rd.release()
        raise RunDirError(f"run directory {path} already holds a run: pass resume=true to "
                          "continue it, or choose another hydra.run.dir")
    return rd
