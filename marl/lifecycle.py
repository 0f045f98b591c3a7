"""The life of a run's process, shared by the entry points: stop signals, the run
directory it holds, and how it ends (exit codes, failure records).

``marl.train`` is the training loop; this module is everything around it that makes a
process a well-behaved job: it takes its run directory before anything is written
(:func:`marl.cli.prepare` for a single run, :meth:`Job.start` for a sweep's job),
turns a stop signal into "finish the update, checkpoint, stop"
(:class:`marl.io.signals.StopSignals`),
and ends with one of the documented exit codes (:func:`finish`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from marl.cli import fail, prepare, save_hydra_files
from marl.config import Config, ConfigError, to_config
from marl.io import provenance
from marl.io.checkpoint import CheckpointError
from marl.io.errors import DiskFullError, NonFiniteError, StoppedAtStartup, TrainingInterrupted
from marl.io.rundir import LockLost, RunDir, RunDirError, check_not_foreign, holds_run
from marl.io.signals import StartupSignals
from marl.reference import describe, deviations
from marl.sweep import clear_refusal, note_stderr, record_refusal


def _empty(run_dir: Path) -> bool:
    """Nothing in ``run_dir`` but its lock (a fresh sweep job's directory)."""
    return run_dir.is_dir() and not holds_run(run_dir)


LOG_NAME = "train.log"
"""The run's log file (Python logging records), opened by :meth:`Job.start` once the
run directory is this process's: Hydra's own job-file logging is off."""


def hydra_writes_nothing(argv: list[str]) -> list[str]:
    """The overrides that keep Hydra from writing into a job's directory before the job
    has claimed it (a sweep's job dir may hold a finished run): no ``.hydra/``
    (:func:`marl.cli.save_hydra_files` writes it after the claim) and no job log file
    (:meth:`Job.open_log`). Not for ``--cfg``, ``--help``... (Hydra runs no task), nor
    when the user chose the job logging."""
    if any(a.startswith("-") and a not in ("-m", "--multirun") and a not in _CONFIG_FLAGS
           for a in argv):
        return []
    keys = {a.lstrip("+~").partition("=")[0] for a in argv}
    return [*([] if "hydra.output_subdir" in keys else ["hydra.output_subdir=null"]),
            *([] if "hydra/job_logging" in keys else ["hydra/job_logging=stdout"])]


_CONFIG_FLAGS = ("-cd", "--config-dir", "-cn", "--config-name", "-cp", "--config-path")


class Job:
    """One run of a process: the run directory it holds, and the Hydra task's ending.

    ``held`` is the directory :func:`marl.cli.prepare` took before Hydra started (a
    single run), or the one :meth:`start` takes for a sweep's job. ``run`` is the task
    body: it returns the sweep objective, raises :class:`TrainingInterrupted` after a
    stop signal's checkpoint, or fails."""

    def __init__(self) -> None:
        self.held: RunDir | None = None
        self._log = None
        self.pid: int | None = None  # the entry point's process (not a sweep's worker)

    def finish(self, body: Callable[[], float], run_dir: Path, multirun: bool) -> float:
        """:func:`finish`, where a stop signal to a sweep whose jobs run in this very
        process (Hydra's basic launcher) stops the sweep, exit 128 + signal: the same
        command with ``resume=true`` continues it (:func:`marl.cli.check_sweep`)."""
        return finish(body, run_dir, multirun, stop_sweep=self.pid == os.getpid())

    def __getstate__(self) -> dict[str, Any]:
        """A pickled job is a fresh one: submitit pickles the task (and, run as
        ``python -m``, the module globals it reads) to requeue a preempted job, and the
        held directory and open log belong to this process only (a lock, a file)."""
        return {"held": None, "_log": None, "pid": None}

    def main(self, task: Callable[[], Any]) -> Any:
        """An entry point's ``main``: check the command line and take the run directory
        (:func:`marl.cli.prepare`: a refusal is one line, exit 2, nothing written), then
        run the Hydra ``task`` with it; the directory is released however it ends."""
        self.pid = os.getpid()
        with StartupSignals() as startup:  # a stop before training: one line, 128 + signal
            try:
                argv, self.held = prepare(sys.argv[1:])  # a signal here waits for the claim
                startup.release()
            except (ConfigError, RunDirError, ImportError) as e:  # ImportError: an extra
                print(f"error: {e}", file=sys.stderr)
                sys.exit(2)
            except StoppedAtStartup as e:
                self.stopped_at_startup(e)
            saved = sys.argv
            sys.argv = [saved[0], *argv, *hydra_writes_nothing(argv)]
            try:
                return task()
            except StoppedAtStartup as e:
                self.stopped_at_startup(e)
            finally:
                sys.argv = saved
                self.release()

    def stopped_at_startup(self, e: StoppedAtStartup) -> None:
        """The one-line stop of a signal before training: the directory given back (and
        removed if this process made it and wrote nothing), exit 128 + signal number."""
        self.release()
        print(str(e), file=sys.stderr)
        sys.exit(128 + e.signum)

    def start(self, dcfg: DictConfig, run_dir: Path, multirun: bool,
              make: Callable[[Config], Any]) -> Any:
        """``make(cfg)`` (the trainer) once the config validates and the run directory
        is this process's; then ``.hydra/`` (a single run's: Hydra writes a sweep job's)
        and the provenance. A refusal returns :meth:`refuse`'s value instead, with
        nothing of the run touched."""
        try:
            if multirun:
                self.claim_job_dir(run_dir)
            made = make(to_config(dcfg))
        except (ConfigError, CheckpointError, RunDirError, ValueError, ImportError) as e:
            return self.refuse(run_dir, str(e).splitlines()[0], multirun, dcfg)
        self.announce()
        self.guard(made)
        save_hydra_files(run_dir, dcfg)
        self.open_log(run_dir)
        if multirun:
            note_stderr(run_dir / ".hydra")
            clear_refusal(run_dir)
        provenance.record(run_dir, reference_record(dcfg))
        (run_dir / "failed.json").unlink(missing_ok=True)  # an earlier attempt's, now stale
        return made

    def guard(self, made: Any) -> None:
        """The run's writers (its ``logger`` and ``checkpointer``) check before each row
        and checkpoint that the directory is still this process's (a deleted lock file:
        :meth:`RunDir.check_held`)."""
        if self.held is None:
            return
        for writer in (getattr(made, "logger", None), getattr(made, "checkpointer", None)):
            if writer is not None:
                writer.guard = self.held.check_held

    def claim_job_dir(self, run_dir: Path) -> None:
        """A sweep's job takes its own directory (Hydra made it for the job, and wrote
        nothing into it: :func:`hydra_writes_nothing`)."""
        check_not_foreign(run_dir)
        self.held = RunDir(run_dir, [])
        self.held.lock(announce=False)

    def refuse(self, run_dir: Path, message: str, multirun: bool,
               dcfg: DictConfig | None = None) -> float:
        """A run refused at start: nothing of it touched (a directory this process
        created for it is removed again), one line, exit 2 (a sweep's job: NaN). A
        sweep's job records its failure (``.hydra/``, ``failed.json``, for the sweep
        summary) only in a directory that holds no run: another run is never changed."""
        if self.held is not None and self.held.created and not multirun:
            self.held.discard()
        record = multirun and self.held is not None and _empty(run_dir)
        if record and dcfg is not None:
            save_hydra_files(run_dir, dcfg)
            note_stderr(run_dir / ".hydra")
        elif multirun:
            record_refusal(run_dir, message)
        return fail(run_dir, message, 2, multirun, record=record)

    def open_log(self, run_dir: Path) -> None:
        """The run's log file (:data:`LOG_NAME`), Hydra's job-log format, on the root
        logger until :meth:`release`."""
        import logging

        self.close_log()
        path = run_dir / LOG_NAME
        if any(getattr(h, "baseFilename", None) == str(path.absolute())
               for h in logging.getLogger().handlers):
            return  # the user's hydra/job_logging writes it already
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter(
            "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
        logging.getLogger().addHandler(handler)
        self._log = handler

    def close_log(self) -> None:
        import logging

        handler = self._log
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()
            self._log = None

    def announce(self) -> None:
        if self.held is not None:
            self.held.announce()

    def release(self) -> None:
        """Give the directory back; one this process created and wrote nothing into (a
        stop during startup) is removed again."""
        self.close_log()
        if self.held is not None:
            if self.held.created and _empty(self.held.path):
                self.held.discard()
            self.held.release()
            self.held = None


def reference_record(dcfg: DictConfig) -> dict[str, Any]:
    """What provenance.json says of a reference preset (nothing for other runs); a run
    that moves one of its pinned settings says so now, in one line."""
    if not dcfg.get("reference", {}).get("name"):
        return {}
    found = deviations(dcfg)
    if found:
        print(describe(dcfg, found), file=sys.stderr, flush=True)
    return {"reference": dcfg.reference.name, "reference_deviations": sorted(found)}


def finish(body: Callable[[], float], run_dir: Path, multirun: bool,
           stop_sweep: bool = False) -> float:
    """Run the task ``body`` and turn how it ended into the exit code of
    :func:`marl.train.main`: 0 with its objective; 128 + signal number after a stop
    signal's checkpoint; 1 with ``failed.json`` for NaN/inf, a full disk or a crash (a
    crash also shows its traceback). In a multirun a stopped or failed job returns NaN
    instead, so the other jobs run (the sweep summary reports it); a stopped one ends the
    sweep with ``stop_sweep``."""
    try:
        return body()
    except TrainingInterrupted as e:
        print(str(e), file=sys.stderr)
        print(f"run directory: {run_dir}")
        if multirun and not stop_sweep:
            return float("nan")
        sys.exit(128 + e.signum)
    except (NonFiniteError, DiskFullError) as e:  # a full disk: also at .hydra/, summary
        return fail(run_dir, str(e), 1, multirun)
    except LockLost as e:  # the directory is another process's now: write nothing there
        return fail(run_dir, str(e), 1, multirun, record=False)
    except Exception as e:
        if not multirun:
            fail(run_dir, f"{type(e).__name__}: {e}", 1, multirun=True)  # record, go on
            raise
        return fail(run_dir, f"{type(e).__name__}: {e}", 1, multirun)
