"""Stop signals: which ones stop a run cleanly, and how they are caught and passed on.

A leaf module (it imports nothing of marl but the error type), so the sweep callbacks
(:mod:`marl.sweep`) and the cluster tests read the same constants as the trainer.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

from marl.io.errors import StoppedAtStartup, TrainingInterrupted

# Signals that make a run finish its update, write a checkpoint and stop. PREEMPT_SIGNAL is
# the one the SLURM launcher asks for ahead of the time limit (submitit's requeue signal:
# conf/hydra/launcher/submitit_slurm_cpu.yaml, README "Sweeps on a cluster");
# tests/test_clusters.py fails if the three ever differ.
PREEMPT_SIGNAL = signal.SIGUSR2
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, PREEMPT_SIGNAL)


def pass_signal_on(handler: Any, stopped: TrainingInterrupted) -> None:
    """After the checkpoint, hand a stop signal to the handler that was installed before
    marl's: in a submitit job that is submitit's, which requeues the job and exits without
    a result, so the sweep waits for the requeued job (it resumes with resume=true).
    Default, ignore and Ctrl-C handlers are not called."""
    if callable(handler) and handler is not signal.default_int_handler:
        print(f"{stopped}; passing {signal.Signals(stopped.signum).name} on", file=sys.stderr)
        handler(stopped.signum, None)


class StopSignals:
    """``with StopSignals() as stop:`` records the first of :data:`STOP_SIGNALS` in
    ``stop.signum`` (the loop checks it between updates) instead of dying mid-update; on
    exit the previous handlers come back, and a :class:`TrainingInterrupted` that left the
    block is passed on to the handler that was there before (:func:`pass_signal_on`)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.signum = signum

    def __enter__(self) -> StopSignals:
        self._previous = {s: StartupSignals.underneath(signal.signal(s, self._on_signal), s)
                          for s in STOP_SIGNALS}
        return self

    def __exit__(self, kind: Any, exc: BaseException | None, _tb: Any) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)
        if isinstance(exc, TrainingInterrupted):
            pass_signal_on(self._previous[exc.signum], exc)


class StartupSignals:
    """``with StartupSignals():`` around a process's start (the command line, the run
    directory, building envs and networks): a stop signal there raises
    :class:`~marl.io.errors.StoppedAtStartup` at once, which the entry points turn into the
    same one-line stop as during training (exit 128 + signal number). The training loop's
    :class:`StopSignals` takes over from it, and passes signals on to the handlers that
    were there before this one (submitit's)."""

    def __init__(self) -> None:
        self.previous: dict[int, Any] = {}
        self.pending: int | None = None  # a signal kept until :meth:`release`
        self._holding = True

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self._holding:  # taking the run directory: stop once it is recorded as taken
            self.pending = self.pending or signum
            return
        raise StoppedAtStartup(signum)

    def release(self) -> None:
        """From here a stop signal stops at once (and one that came already, now)."""
        self._holding = False
        if self.pending is not None:
            raise StoppedAtStartup(self.pending)

    @staticmethod
    def underneath(handler: Any, signum: int) -> Any:
        """``handler``, or the one a StartupSignals handler stands in front of."""
        owner = getattr(handler, "__self__", None)
        return owner.previous[signum] if isinstance(owner, StartupSignals) else handler

    def __enter__(self) -> StartupSignals:
        self.previous = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, h in self.previous.items():
            signal.signal(s, h)
