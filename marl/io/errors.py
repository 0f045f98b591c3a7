"""Exceptions that end a run with a clear message instead of a traceback."""

from __future__ import annotations

from typing import Any


class NonFiniteError(RuntimeError):
    """NaN or inf in a loss, a gradient or a parameter: the update was not applied."""


class TrainingInterrupted(RuntimeError):
    """A signal (SIGTERM, SIGINT, SIGUSR1) stopped the run after writing a checkpoint."""

    def __init__(self, signum: int, env_steps: int, checkpoint: str):
        import signal

        self.signum, self.env_steps, self.checkpoint = signum, env_steps, checkpoint
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name} at env_steps={env_steps}; checkpoint "
                         f"{checkpoint}; continue with resume=true")


def check_finite(module: Any) -> None:
    """Raise :class:`NonFiniteError` naming ``module``'s first NaN/inf parameter
    (``module``: anything with ``named_parameters()``, a torch ``nn.Module``)."""
    import torch

    for name, p in module.named_parameters():
        if not torch.isfinite(p).all():
            raise NonFiniteError(f"parameter {name} has non-finite values")
