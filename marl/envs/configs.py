"""Config dataclasses of every env, in one light module (numpy only).

The env table (``marl.envs.ENVS``) and Hydra's ConfigStore read these schemas without
importing gymnasium, PettingZoo, SuperSuit or an emulator: validation that needs one of
them imports it when a config is built. Each env module re-exports its config, and the
env's behaviour is documented there (``marl/envs/<env>.py`` or ``marl/envs/<env>/``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from marl.envs.checks import (
    as_list,
    is_int,
    is_real,
    need,
    need_choice,
    need_int,
    need_number,
    plain,
)
from marl.envs.extras import check_pettingzoo_extra, require_extra
from marl.envs.wrapper_names import resolve_wrapper


@dataclass
class BoxPushConfig:
    """Configuration of the two-robot box-pushing env (see marl/envs/boxpush/)."""

    width: int = 5
    """Number of grid columns (x), walls excluded; at least 3."""
    height: int = 5
    """Number of grid rows (y), walls excluded; at least 3."""
    box_weight: int = 2
    """Robots pushing together that move the box for sure: 1 (light) or 2 (heavy)."""
    solo_push_prob: float = 0.5
    """Probability that fewer than box_weight pushers still move the box, in [0, 1]."""
    hole: Any = None
    """Hole cell [x, y]; None = middle of the top row (W // 2, 0); "random" = per episode."""
    max_steps: int = 50
    """Episode length after which it is truncated; at least 1."""
    step_penalty: float = 0.0
    """Cost paid by each robot every step (reward -= step_penalty); at least 0."""
    view_radius: int | None = None
    """Chebyshev radius within which objects are observed; None = everything visible."""

    def __post_init__(self) -> None:
        need_int(self, "width", 3)
        need_int(self, "height", 3)
        need(is_int(self.box_weight) and self.box_weight in (1, 2), "box_weight",
             self.box_weight, "must be 1 or 2")
        need_number(self, "solo_push_prob", 0.0, 1.0)
        need_int(self, "max_steps", 1)
        need_number(self, "step_penalty", 0.0)
        need_int(self, "view_radius", 0, optional=True)
        self.hole = self._checked_hole(self.hole)

    def _checked_hole(self, hole: Any) -> Any:
        if hole is None or (isinstance(hole, str) and hole == "random"):
            return hole
        xy = as_list(hole)
        need(len(xy) == 2 and all(is_int(v) for v in xy) and 0 <= xy[0] < self.width
             and 0 <= xy[1] < self.height, "hole", hole,
             f'must be None (= [{self.width // 2}, 0]), "random" or a list [x, y] of ints '
             f"with 0 <= x < {self.width} and 0 <= y < {self.height}")
        return [int(xy[0]), int(xy[1])]

    @property
    def fixed_hole(self) -> tuple[int, int] | None:
        """The hole cell (x, y), or None when the hole is random per episode."""
        if self.hole == "random":
            return None
        if self.hole is None:
            return (self.width // 2, 0)
        return (self.hole[0], self.hole[1])


@dataclass
class BoxPushEnvConfig(BoxPushConfig):
    """Two-robot box pushing (the rules: :mod:`marl.envs.boxpush`)."""

    name: str = "boxpush"
    """Registry key of the env."""


@dataclass
class BanditEnvConfig:
    """Configuration of the k-armed Gaussian bandit (see marl/envs/bandit.py)."""

    means: list[float] = field(default_factory=lambda: [1.0, 0.9, 0.9, 1.0])
    """Mean reward of each arm (k = len(means)); at least 2 finite numbers."""
    std: float = 1.0
    """Standard deviation of every arm's Gaussian reward; finite and >= 0 (0 = exact)."""
    name: str = "bandit"
    """Registry key of the env; must be "bandit"."""

    def __post_init__(self) -> None:
        need_choice(self, "name", ("bandit",))
        means = as_list(self.means)
        need(len(means) >= 2 and all(is_real(m) and math.isfinite(m) for m in means), "means",
             self.means, "must be a list of at least 2 finite numbers (one mean reward per arm)")
        self.means = [float(m) for m in means]
        need_number(self, "std", 0.0)
        self.std = float(self.std)

    @property
    def n_arms(self) -> int:
        return len(self.means)


VECTORIZATIONS = ("native", "sync")


@dataclass
class CartPoleEnvConfig:
    """Configuration of CartPole (or another discrete-action gymnasium env)."""

    id: str = "CartPole-v1"
    """Gymnasium env id; any registered env with Discrete actions and Box observations."""
    max_steps: int = 500
    """Time limit (TimeLimit's max_episode_steps): episodes are truncated after it; >= 1."""
    vectorization: str = "native"
    """native: gymnasium's numpy-vectorised CartPole (CartPole ids only, fast); sync:
    gymnasium's SyncVectorEnv of gymnasium.make(id) (any id, one env per Python object)."""
    name: str = "cartpole"
    """Registry key of the env; must be "cartpole"."""

    def __post_init__(self) -> None:
        import gymnasium  # gymnasium: imported on use, not by import marl.envs

        need_choice(self, "name", ("cartpole",))
        need(isinstance(self.id, str) and self.id in gymnasium.registry, "id", self.id,
             "must be a registered gymnasium env id with Discrete actions, e.g. 'CartPole-v1'")
        need_int(self, "max_steps", 1)
        need_choice(self, "vectorization", VECTORIZATIONS)
        need(self.vectorization != "native" or _is_cartpole(self.id), "vectorization", "native",
             f"with env.id = {self.id!r} only CartPole has a native vector env here; use 'sync'")


def _is_cartpole(env_id: str) -> bool:
    import gymnasium  # gymnasium: imported on use, not by import marl.envs

    ep = gymnasium.spec(env_id).entry_point
    return isinstance(ep, str) and ep.endswith("cartpole:CartPoleEnv")


MODES = ("standard", "karpathy")
BACKENDS = ("ale_vector", "gymnasium")
DEFAULTS = {
    "standard": {"backend": "ale_vector", "frameskip": 4, "noop_max": 30},
    "karpathy": {"backend": "gymnasium", "frameskip": 3, "noop_max": 0},
}
"""Per-mode values of the config fields left at None."""


@dataclass
class PongEnvConfig:
    """Configuration of Atari Pong (see marl/envs/atari.py)."""

    mode: str = "standard"
    """Preprocessing: standard (84x84 grey, 4-frame stack, 6 actions; uint8 pixels) or
    karpathy (pg-pong: 80x80 binary difference frame as 6400 floats, UP/DOWN)."""
    backend: str | None = None
    """Emulator: ale_vector (ale-py's C++ AtariVectorEnv) or, in karpathy mode only,
    gymnasium (state = RAM / 255, exact final frames and resume). None = the mode's
    default: ale_vector (standard), gymnasium (karpathy)."""
    frameskip: int | None = None
    """Emulator frames per agent step (the action is repeated); >= 1. None = the mode's
    default: 4 (standard), 3 (karpathy)."""
    repeat_action_probability: float = 0.25
    """Sticky actions: the chance, each frame, that the emulator repeats the previous
    action instead (ALE v5 and Pong-v0 use 0.25); in [0, 1)."""
    noop_max: int | None = None
    """Up to this many random no-op frames after each reset; >= 0 (0 with the gymnasium
    backend). None = the mode's default: 30 (standard), 0 (karpathy)."""
    max_episode_frames: int = 108_000
    """Time limit in emulator frames (108000 = 30 min of play); an episode that reaches it
    is truncated; >= 1."""
    num_threads: int = 0
    """Worker threads of the ale_vector backend; 0 = min(num_envs, CPU cores)."""
    name: str = "pong"
    """Registry key of the env; must be "pong"."""

    def __post_init__(self) -> None:
        need_choice(self, "name", ("pong",))
        need_choice(self, "mode", MODES)
        need_choice(self, "backend", BACKENDS, optional=True)
        need(self.backend != "gymnasium" or self.mode == "karpathy", "backend", self.backend,
             f"with env.mode = {self.mode!r} (the gymnasium backend serves karpathy mode only; "
             "use 'ale_vector')")
        need_int(self, "frameskip", 1, optional=True)
        need_number(self, "repeat_action_probability", 0.0, 1.0, hi_open=True)
        need_int(self, "noop_max", 0, optional=True)
        need(self.effective_backend != "gymnasium" or self.effective_noop_max == 0, "noop_max",
             self.noop_max, "with env.backend = 'gymnasium' it must be None or 0 (ale_py's "
             "AtariEnv has no no-op starts)")
        need_int(self, "max_episode_frames", 1)
        need_int(self, "num_threads", 0, note=" (0 = one per CPU core, at most one per env)")
        require_extra("atari", "env.name = 'pong'", ("ale_py",))  # ale-py: not in the core

    def _or_default(self, name: str) -> Any:
        """Field ``name``, or the mode's default when it is None."""
        value = getattr(self, name)
        return DEFAULTS[self.mode][name] if value is None else value

    effective_backend = property(lambda self: self._or_default("backend"))
    effective_frameskip = property(lambda self: self._or_default("frameskip"))
    effective_noop_max = property(lambda self: self._or_default("noop_max"))


CLIMBING_PAYOFF = ((11.0, -30.0, 0.0), (-30.0, 7.0, 0.0), (0.0, 6.0, 5.0))
"""Payoff of the climbing game, ``[a0][a1]``."""


def penalty_payoff(k: float = 100.0) -> tuple[tuple[float, ...], ...]:
    """Payoff of the penalty game with miscoordination cost ``k``, ``[a0][a1]``."""
    k = float(k)
    return ((-k, 0.0, 10.0), (0.0, 2.0, 0.0), (10.0, 0.0, -k))


@dataclass
class ClimbingEnvConfig:
    """The climbing game (no parameters; see marl/envs/matrix.py)."""

    name: str = "climbing"
    """Registry key of the env."""

    def payoff(self) -> tuple[tuple[float, ...], ...]:
        """The 3x3 payoff matrix ``[a0][a1]``."""
        return CLIMBING_PAYOFF


@dataclass
class PenaltyEnvConfig:
    """The penalty game (see marl/envs/matrix.py)."""

    name: str = "penalty"
    """Registry key of the env."""
    k: float = 100.0
    """Cost of miscoordinating on an optimum: payoff -k at (0, 0) and (2, 2); k >= 0."""

    def __post_init__(self) -> None:
        need_number(self, "k", 0.0)

    def payoff(self) -> tuple[tuple[float, ...], ...]:
        """The 3x3 payoff matrix ``[a0][a1]``."""
        return penalty_payoff(self.k)


STATE_MODES = ("auto", "env", "concat_obs")
OBS_LAYOUTS = ("auto", "hwc", "chw", "flat")


@dataclass
class PettingZooEnvConfig:
    """Any PettingZoo env through the generic adapter (see ``marl/envs/pettingzoo/``)."""

    name: str = "pettingzoo"
    """Registry key of the env."""
    id: str = "mpe2:simple_spread_v3"
    """"<module>:<factory>" (mpe2:simple_spread_v3) or a registry id (sisl/pursuit-v5)."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the factory, e.g. {continuous_actions: false, max_cycles: 25}."""
    wrappers: list[Any] = field(default_factory=list)
    """SuperSuit wrappers applied in order: names or one-key mappings name -> kwargs."""
    parallel: bool = True
    """The factory returns a ParallelEnv (true) or an AEC env to convert (false)."""
    state: str = "auto"
    """Global state: auto (env.state() if implemented, else concat_obs), env, concat_obs."""
    obs_layout: str = "auto"
    """Multi-axis observations: auto (uint8 = images, else flattened), hwc, chw or flat."""
    num_workers: int = 0
    """Subprocesses stepping the envs; 0 = step them in this process."""

    def __post_init__(self) -> None:
        need(isinstance(self.id, str) and bool(re.fullmatch(r"[\w.]+:[\w.]+", self.id)
                                               or re.fullmatch(r"[\w.]+/[\w.]+-v\d+", self.id)),
             "id", self.id, "must be '<module>:<factory>' (e.g. 'mpe2:simple_spread_v3', "
             "'pettingzoo.butterfly:pistonball_v6') or a PettingZoo registry id "
             "'<namespace>/<name>-v<N>' (e.g. 'butterfly/pistonball-v6')")
        check_pettingzoo_extra(self.id)  # Atari, butterfly: extras
        kw = plain(self.kwargs) if self.kwargs is not None else {}
        need(isinstance(kw, dict) and all(isinstance(k, str) for k in kw), "kwargs",
             self.kwargs, "must be a mapping of keyword arguments (str keys) for the factory")
        self.kwargs = kw
        wr = plain(self.wrappers) if self.wrappers is not None else []
        need(isinstance(wr, list), "wrappers", self.wrappers,
             "must be a list of SuperSuit wrapper names or one-key mappings {name: kwargs}")
        self.wrappers = wr
        for i, entry in enumerate(wr):  # SuperSuit is imported only when there is one
            resolve_wrapper(entry, i)
        need(isinstance(self.parallel, (bool, np.bool_)), "parallel", self.parallel,
             "must be true or false")
        need_choice(self, "state", STATE_MODES)
        need_choice(self, "obs_layout", OBS_LAYOUTS)
        need_int(self, "num_workers", 0, note=" (0 = step the envs in this process)")

