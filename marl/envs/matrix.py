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

Two front ends share one implementation of the rules: :class:`MatrixGameCore`, the
batched numpy :class:`~marl.envs.base.VecEnv` the runner uses, and
:class:`MatrixGameEnv`, the generic PettingZoo front end (:mod:`marl.envs.parallel`)
over a core with one env and no auto-reset (so the PettingZoo adapter can run it too).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from marl.envs.base import EnvSpec, VecBuffers, buffers_state, restore_buffers
from marl.envs.checks import as_config, check_batch_actions, check_num_envs
from marl.envs.configs import (
    CLIMBING_PAYOFF,
    ClimbingEnvConfig,
    PenaltyEnvConfig,
    penalty_payoff,
)
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


class MatrixGameCore:
    """``num_envs`` copies of a one-step 3x3 matrix game stepped at once (a VecEnv).

    Every step ends every episode: ``reward[b] = payoff[a0, a1]`` for both agents,
    ``terminated`` is all True, ``final_obs`` / ``final_state`` hold the (constant)
    observation and state, and ``buf.episode`` holds ``optimal`` and ``joint_action``.
    With ``autoreset=True`` the next episode starts at once (its observation is the same
    constant); with ``autoreset=False`` ``alive`` turns False and stepping again raises
    RuntimeError until ``reset``.
    """

    def __init__(
        self,
        payoff: Any = CLIMBING_PAYOFF,
        num_envs: int = 1,
        seed: int | None = None,
        autoreset: bool = True,
    ) -> None:
        self.num_envs = b = check_num_envs(num_envs)
        self.payoff = _payoff_array(payoff)
        self._flat = self.payoff.ravel()
        self._optimal = self._flat == self._flat.max()  # [9] joint action is optimal
        self.autoreset = bool(autoreset)
        self.spec = EnvSpec(
            agents=AGENTS,
            obs_shape=(OBS_DIM,),
            state_dim=STATE_DIM,
            n_actions=N_ACTIONS,
            episode_metrics=EPISODE_METRICS,
            success_metric="optimal",
        )
        self.buf = VecBuffers.allocate(self.spec, b)
        self.buf.obs[:] = 1.0
        self.buf.state[:] = 1.0
        self.buf.final_obs[:] = 1.0
        self.buf.final_state[:] = 1.0
        self._joint = np.zeros(b, np.intp)
        self._ended = False
        self.reset(seed)

    @property
    def optimal_joint_actions(self) -> list[tuple[int, int]]:
        """The joint actions ``(a0, a1)`` that pay the maximum payoff."""
        return [(int(j) // N_ACTIONS, int(j) % N_ACTIONS) for j in np.flatnonzero(self._optimal)]

    def reset(self, seed: int | None = None) -> VecBuffers:
        """Start a new episode everywhere (the game is deterministic: ``seed`` is unused)."""
        buf = self.buf
        self._ended = False
        buf.reward[:] = 0.0
        buf.terminated[:] = False
        buf.truncated[:] = False
        buf.alive[:] = True
        return buf

    def step(self, actions: np.ndarray) -> VecBuffers:
        """Play ``actions`` [B, 2] (ints in 0..2) in every env; every episode ends."""
        actions = check_batch_actions(actions, self.spec, self.num_envs)
        if self._ended:
            raise RuntimeError(
                "the episodes have ended (autoreset=False): call reset() before stepping again"
            )
        buf = self.buf
        joint = self._joint
        np.multiply(actions[:, 0], N_ACTIONS, out=joint, casting="unsafe")
        joint += actions[:, 1]
        buf.reward[:] = self._flat[joint][:, None]
        buf.terminated[:] = True
        buf.truncated[:] = False
        buf.episode["optimal"][:] = self._optimal[joint]
        buf.episode["joint_action"][:] = joint
        # Observation, state and mask are constant: final_* already hold them.
        if not self.autoreset:
            self._ended = True
            buf.alive[:] = False
        return buf

    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue exactly (see ``ResumableVecEnv``).

        The game has no randomness and no memory across steps: the state is the payoff,
        whether the episodes have ended (``autoreset=False``) and the buffers.
        """
        return {
            "num_envs": self.num_envs,
            "payoff": self.payoff.copy(),
            "autoreset": self.autoreset,
            "ended": self._ended,
            "buf": buffers_state(self.buf),
            "episode": {k: v.copy() for k, v in self.buf.episode.items()},
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_state` output into this env (same game and ``num_envs``)."""
        payoff = np.asarray(state["payoff"], np.float32)
        if (state["num_envs"] != self.num_envs or payoff.shape != self.payoff.shape
                or not np.array_equal(payoff, self.payoff)
                or bool(state["autoreset"]) != self.autoreset):
            raise ValueError(
                f"saved matrix-game state is for num_envs={state['num_envs']}, payoff "
                f"{payoff.tolist()}, autoreset={state['autoreset']}; this env has "
                f"num_envs={self.num_envs}, payoff {self.payoff.tolist()}, "
                f"autoreset={self.autoreset}")
        restore_buffers(self.buf, state["buf"])
        for k, v in state["episode"].items():
            self.buf.episode[k][:] = v
        self._ended = bool(state["ended"])

    def close(self) -> None:
        """Nothing to release."""


class MatrixGameEnv(CoreParallelEnv):
    """PettingZoo ``ParallelEnv`` of a one-step 3x3 matrix game over a one-env core.

    ``infos[agent]`` after the step holds ``optimal`` and ``joint_action``; ``render()``
    (``"ansi"``) prints the payoff matrix with the last joint action starred.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "name": "matrix_game_v0",
        "render_modes": ["ansi"],
        "is_parallelizable": True,
    }

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


def make_matrix_vec_env(
    cfg: Any, num_envs: int, seed: int | None = None
) -> MatrixGameCore:
    """Registry factory: a :class:`MatrixGameCore` for a climbing or penalty config.

    ``cfg`` is a :class:`ClimbingEnvConfig` / :class:`PenaltyEnvConfig` or a mapping with
    their fields (``name`` selects the game).
    """
    if not isinstance(cfg, (ClimbingEnvConfig, PenaltyEnvConfig)):
        if not (isinstance(cfg, Mapping) or hasattr(cfg, "keys")):
            raise TypeError(f"expected a matrix-game config or a mapping, got {type(cfg)}")
        cls = {"climbing": ClimbingEnvConfig, "penalty": PenaltyEnvConfig}.get(cfg.get("name"))
        if cls is None:
            raise ValueError(
                f"env.name = {cfg.get('name')!r} is invalid: choose climbing or penalty"
            )
        cfg = as_config(cfg, cls)
    return MatrixGameCore(cfg, num_envs=num_envs, seed=seed)
