"""``device=auto|cpu|cuda|cuda:<index>``: where the networks, the replay buffers and the
updates live.

The env side stays on the CPU: the runner's :class:`~marl.core.rollout.Rollout` is filled
from the env's numpy arrays. :func:`marl.build.build` constructs the learner under
``torch.device(device)``, so every parameter, optimiser state and buffer made at
construction follows it; the learner moves each fragment there once per update
(:meth:`Rollout.to`, nothing on the CPU), and the policy moves its inputs there and its
actions back. Tensors made during an update take their device from a tensor they work on
(``device=x.device``, ``x.new_zeros``), never from torch's default:
``tests/test_device.py`` runs an update of every table row with the default device set
to ``meta`` to catch one that does not.
"""

from __future__ import annotations

import re

import torch

from marl.schema import ConfigError

DEVICE_CHOICES = "auto, cpu, cuda or cuda:<index>"


def check_device_name(name: str) -> None:
    """Refuse (one line) a ``device`` that is not one of :data:`DEVICE_CHOICES`, and a
    CUDA device this machine does not have."""
    if name in ("auto", "cpu"):
        return
    if not re.fullmatch(r"cuda(:\d+)?", str(name)):
        raise ConfigError(f"device={name!r} is not a device: choose {DEVICE_CHOICES}")
    if not torch.cuda.is_available():
        built = "with" if torch.backends.cuda.is_built() else "without"
        raise ConfigError(f"device={name}: CUDA is not available here (torch "
                          f"{torch.__version__}, built {built} CUDA); use device=cpu "
                          "or device=auto")
    index = int(name.partition(":")[2] or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise ConfigError(f"device={name}: this machine has {count} CUDA device(s), "
                          f"cuda:0 to cuda:{count - 1}")


def resolve_device(name: str) -> torch.device:
    """The torch device ``device=name`` stands for (``auto``: CUDA where available)."""
    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
