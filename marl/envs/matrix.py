"""One-step cooperative matrix games: climbing and penalty (Claus & Boutilier, 1998).

Two agents, ``player_0`` (the row player) and ``player_1`` (the column player), each
pick one of 3 actions once; both receive the same payoff ``payoff[a0][a1]`` and the
episode terminates after that single step (``terminated=True``, never truncated).

* Climbing: ``[[11, -30, 0], [-30, 7, 0], [0, 6, 5]]``. The optimum (0, 0) pays 11 but
  is surrounded by -30s, so independent learners drift to the safe (2, 2) or (1, 1).
* Penalty: ``[[-k, 0, 10], [0, 2, 0], [10, 0, -k]]`` with ``k >= 0`` (default 100). The
  two optima (0, 2) and (2, 0) pay 10; miscoordinating on them (0, 0) / (2, 2) costs
  ``-k``, which pushes learners to the safe (1, 1).

Observation of each agent: the constant ``[1.0]`` (float32, shape ``(1,)``); the global
state is the same constant ``[1.0]``. Actions are ``Discrete(3)``.

Episode statistics: ``optimal`` (1.0 when the joint action pays the game's maximum
payoff) and ``joint_action`` (``a0 * 3 + a1``, to see which cell a learner converges to).
``optimal`` is the success metric.

:class:`MatrixGameCore` is the batched core, :class:`MatrixGameEnv` its PettingZoo front
end (:mod:`marl.envs.parallel`), which the PettingZoo adapter can run too.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from marl.envs.base import EnvSpec
from marl.envs.checks import as_config, need
from marl.envs.configs import (
    CLIMBING_PAYOFF,
    ClimbingEnvConfig,
    PenaltyEnvConfig,
    penalty_payoff,
)
from marl.envs.onestep import OneStepCore
from marl.envs.parallel import CoreParallelEnv

AGENTS = ("player_0", "player_1")
N_ACTIONS = 3
OBS_DIM = 1
STATE_DIM = 1
EPISODE_METRICS = ("optimal", "joint_action")
__all__ = ["CLIMBING_PAYOFF", "ClimbingEnvConfig", "MatrixGameCore", "MatrixGameEnv",
           "PenaltyEnvConfig", "climbing_parallel_env", "make_matrix_vec_env",
           "penalty_parallel_env", "penalty_payoff"]


def _payoff_array(payoff: Any) -> np.ndarray:
    """A checked float32 [3, 3] copy of ``payoff`` (a config or a nested sequence)."""
    if hasattr(payoff, "payoff"):
        payoff = payoff.payoff()
    arr = np.asarray(payoff, dtype=np.float64)
    if arr.shape != (N_ACTIONS, N_ACTIONS) or not np.isfinite(arr).all():
        raise ValueError(f"payoff must be a finite 3x3 matrix, got {payoff!r}")
    return arr.astype(np.float32)


class MatrixGameCore(OneStepCore):
    """``num_envs`` copies of a 3x3 matrix game (a one-step core, :mod:`marl.envs.onestep`);
    deterministic: ``seed`` changes nothing."""

    kind = "matrix-game"

    def __init__(
        self,
        payoff: Any = CLIMBING_PAYOFF,
        num_envs: int = 1,
        seed: int | None = None,
        autoreset: bool = True,
    ) -> None:
        self.payoff = _payoff_array(payoff)
        self._flat = self.payoff.ravel()
        self._optimal = self._flat == self._flat.max()  # [9] joint action is optimal
        spec = EnvSpec(agents=AGENTS, obs_shape=(OBS_DIM,), state_dim=STATE_DIM,
                       n_actions=N_ACTIONS, episode_metrics=EPISODE_METRICS,
                       success_metric="optimal", episode_limit=1)
        super().__init__(spec, num_envs, seed, autoreset)
        self._joint = np.zeros(self.num_envs, np.intp)

    @property
    def optimal_joint_actions(self) -> list[tuple[int, int]]:
        """The joint actions ``(a0, a1)`` that pay the maximum payoff."""
        return [(int(j) // N_ACTIONS, int(j) % N_ACTIONS) for j in np.flatnonzero(self._optimal)]

    def _config(self) -> dict[str, Any]:
        return {"payoff": self.payoff.tolist()}

    def _play(self, actions: np.ndarray) -> None:
        buf, joint = self.buf, self._joint
        np.multiply(actions[:, 0], N_ACTIONS, out=joint, casting="unsafe")
        joint += actions[:, 1]
        buf.reward[:] = self._flat[joint][:, None]
        buf.episode["optimal"][:] = self._optimal[joint]
        buf.episode["joint_action"][:] = joint


class MatrixGameEnv(CoreParallelEnv):
    """PettingZoo ``ParallelEnv`` of a one-step 3x3 matrix game over a one-env core.

    ``infos[agent]`` after the step holds ``optimal`` and ``joint_action``; ``render()``
    (``"ansi"``) prints the payoff matrix with the last joint action starred.
    """

    metadata: ClassVar[dict[str, Any]] = {"name": "matrix_game_v0", "render_modes": ["ansi"],
                                          "is_parallelizable": True}

    def __init__(
        self, payoff: Any = CLIMBING_PAYOFF, name: str = "matrix_game_v0",
        render_mode: str | None = None,
    ) -> None:
        self.metadata = {**self.metadata, "name": name}
        super().__init__(MatrixGameCore(payoff, num_envs=1, autoreset=False), None, render_mode)

    def _render(self) -> str:
        last = tuple(self._actions[0]) if self._ended else None
        rows = []
        for i, row in enumerate(self.core.payoff):
            rows.append(" ".join(f"{'*' if last == (i, j) else ' '}{v:7.1f}"
                                 for j, v in enumerate(row)))
        return "\n".join(rows) + "\n"


def climbing_parallel_env(render_mode: str | None = None) -> MatrixGameEnv:
    """PettingZoo factory of the climbing game (``marl.envs.matrix:climbing_parallel_env``)."""
    return MatrixGameEnv(CLIMBING_PAYOFF, name="climbing_v0", render_mode=render_mode)


def penalty_parallel_env(k: float = 100.0, render_mode: str | None = None) -> MatrixGameEnv:
    """PettingZoo factory of the penalty game (``marl.envs.matrix:penalty_parallel_env``)."""
    PenaltyEnvConfig(k=k)  # validates k
    return MatrixGameEnv(penalty_payoff(k), name="penalty_v0", render_mode=render_mode)


def make_matrix_vec_env(cfg: Any, num_envs: int, seed: int | None = None) -> MatrixGameCore:
    """Registry factory: a :class:`MatrixGameCore` for a :class:`ClimbingEnvConfig` /
    :class:`PenaltyEnvConfig` or a mapping of their fields (``name`` selects the game)."""
    if not isinstance(cfg, (ClimbingEnvConfig, PenaltyEnvConfig)):
        name = cfg.get("name") if hasattr(cfg, "keys") else "climbing"  # else: TypeError
        need(name in ("climbing", "penalty"), "name", name, "choose climbing or penalty")
        cfg = as_config(cfg, PenaltyEnvConfig if name == "penalty" else ClimbingEnvConfig)
    return MatrixGameCore(cfg, num_envs=num_envs, seed=seed)
