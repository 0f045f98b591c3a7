"""Exceptions that end a run with a clear message instead of a traceback."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class NonFiniteError(RuntimeError):
    """NaN or inf in a loss, a gradient or a parameter: the update was not applied."""


class DiskFullError(RuntimeError):
    """The disk (or quota) filled up while writing ``path``; what was written before is
    intact, and the run continues with ``resume=true`` once space is freed."""

    def __init__(self, path: Path | str):
        self.path = str(path)
        super().__init__(f"no space left on device while writing {path}: free some space "
                         "and continue with resume=true")


def is_disk_full(e: BaseException | None) -> bool:
    """True if ``e`` or an exception it was raised from is ENOSPC or EDQUOT."""
    while e is not None:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        e = e.__cause__ or e.__context__
    return False


@contextmanager
def disk_full_names(path: Path | str) -> Iterator[None]:
    """Turn a full disk inside the block into :class:`DiskFullError` naming ``path``."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as e:
        if is_disk_full(e):
            raise DiskFullError(path) from e
        raise


class TrainingInterrupted(RuntimeError):
    """A signal (SIGTERM, SIGINT, SIGUSR1) stopped the run after writing a checkpoint."""

    def __init__(self, signum: int, env_steps: int, checkpoint: str):
        import signal

        self.signum, self.env_steps, self.checkpoint = signum, env_steps, checkpoint
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name} at env_steps={env_steps}; checkpoint "
                         f"{checkpoint}; continue with resume=true")


class StoppedAtStartup(BaseException):
    """A stop signal arrived before training began: nothing to checkpoint yet. A
    BaseException, as KeyboardInterrupt is, so that no ``except Exception`` on the way
    (Hydra's own included) turns it into a traceback: the entry point prints the line."""

    def __init__(self, signum: int):
        import signal

        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name} during startup, "
                         "before any training: nothing to continue; run the command again")


def check_finite(module: Any) -> None:
    """Raise :class:`NonFiniteError` naming ``module``'s first NaN/inf parameter
    (``module``: anything with ``named_parameters()``, a torch ``nn.Module``)."""
    import torch

    for name, p in module.named_parameters():
        if not torch.isfinite(p).all():
            raise NonFiniteError(f"parameter {name} has non-finite values")
