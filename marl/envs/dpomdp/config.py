"""The config of the Dec-POMDP env (numpy and the standard library only, like
:mod:`marl.envs.configs`): which problem, which horizon."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marl.envs.checks import is_int
from marl.schema import ConfigError

PROBLEMS_DIR = Path(__file__).resolve().parent / "problems"
"""Where the shipped ``.dpomdp`` files are (GPL-3.0 data from the MADP toolbox)."""
PROBLEMS: dict[str, str] = {
    "dectiger": "dectiger.dpomdp",
    "broadcastChannel": "broadcastChannel.dpomdp",
    "GridSmall": "GridSmall.dpomdp",
    "recycling": "recycling.dpomdp",
}
"""Shipped problem name -> its file in :data:`PROBLEMS_DIR`."""
_BY_LOWER = {k.lower(): k for k in PROBLEMS}
_SUFFIXES = (".dpomdp", ".dpomdp.gz")


def _refuse(name: str, value: Any, must: str) -> ConfigError:
    return ConfigError(f"env.{name} = {value!r} is invalid: {must}")


def _launch_dir() -> str:
    """Where relative paths start: Hydra's launch directory inside a Hydra job (Hydra
    changes the working directory), else the current one. Imports nothing."""
    hc = sys.modules.get("hydra.core.hydra_config")
    if hc is not None and hc.HydraConfig.initialized():
        return str(hc.HydraConfig.get().runtime.cwd)
    return os.getcwd()


def resolve_problem(problem: Any) -> tuple[str, Path]:
    """``(canonical value, file)`` of ``env.problem``: a shipped name (any case) becomes
    its canonical spelling, a path becomes absolute. ConfigError (one line naming the
    allowed values) for anything else."""
    allowed = (f"choose one of {list(PROBLEMS)} (any case) or the path of a .dpomdp / "
               ".dpomdp.gz file")
    if not isinstance(problem, (str, os.PathLike)) or not str(problem).strip():
        raise _refuse("problem", problem, allowed)
    text = str(problem).strip()
    if text.lower() in _BY_LOWER:
        key = _BY_LOWER[text.lower()]
        return key, PROBLEMS_DIR / PROBLEMS[key]
    looks_like_path = text.endswith(_SUFFIXES) or os.sep in text or "/" in text
    if not looks_like_path:
        raise _refuse("problem", problem, allowed)
    path = Path(os.path.expanduser(text))
    if not path.is_absolute():
        path = Path(_launch_dir()) / path
    if not path.is_file():
        raise _refuse("problem", problem, f"no such file ({path}); {allowed}")
    return str(path), path


@dataclass
class DPOMDPEnvConfig:
    """A finite-horizon Dec-POMDP read from a ``.dpomdp`` file (the rules:
    :mod:`marl.envs.dpomdp`)."""

    name: str = "dpomdp"
    """Registry key of the env."""
    problem: str = "dectiger"
    """A shipped problem (dectiger, broadcastChannel, GridSmall, recycling; any case) or
    the path of a .dpomdp / .dpomdp.gz file (relative to the launch directory)."""
    horizon: int = 3
    """H: steps per episode (>= 1); the episode terminates after step H."""

    def __post_init__(self) -> None:
        if self.name != "dpomdp":
            raise _refuse("name", self.name, "choose one of ['dpomdp']")
        if not is_int(self.horizon) or self.horizon < 1:
            raise _refuse("horizon", self.horizon, "must be an int >= 1 (the number of steps "
                                                   "per episode)")
        self.horizon = int(self.horizon)
        self.problem, _ = resolve_problem(self.problem)

    @property
    def path(self) -> Path:
        """The problem's ``.dpomdp`` file."""
        return resolve_problem(self.problem)[1]
