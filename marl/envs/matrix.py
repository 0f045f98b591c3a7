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
:class:`MatrixGameEnv`, a PettingZoo ``ParallelEnv`` over a core with one env and no
auto-reset (so the generic PettingZoo adapter can run it too).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from marl.envs.base import EnvSpec, VecBuffers, buffers_state, check_actions, restore_buffers

AGENTS = ("player_0", "player_1")
N_ACTIONS = 3
OBS_DIM = 1
STATE_DIM = 1
EPISODE_METRICS = ("optimal", "joint_action")

CLIMBING_PAYOFF = ((11.0, -30.0, 0.0), (-30.0, 7.0, 0.0), (0.0, 6.0, 5.0))
"""Payoff of the climbing game, ``[a0][a1]``."""


def penalty_payoff(k: float = 100.0) -> tuple[tuple[float, ...], ...]:
    """Payoff of the penalty game with miscoordination cost ``k``, ``[a0][a1]``."""
    k = float(k)
    return ((-k, 0.0, 10.0), (0.0, 2.0, 0.0), (10.0, 0.0, -k))


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(
        v, (bool, np.bool_)
    )


@dataclass
class ClimbingEnvConfig:
    """The climbing game (no parameters; see the module docstring)."""

    name: str = "climbing"
    """Registry key of the env."""

    def payoff(self) -> tuple[tuple[float, ...], ...]:
        """The 3x3 payoff matrix ``[a0][a1]``."""
        return CLIMBING_PAYOFF


@dataclass
class PenaltyEnvConfig:
    """The penalty game (see the module docstring)."""

    name: str = "penalty"
    """Registry key of the env."""
    k: float = 100.0
    """Cost of miscoordinating on an optimum: payoff -k at (0, 0) and (2, 2); k >= 0."""

    def __post_init__(self) -> None:
        if not _is_real(self.k) or not self.k >= 0.0 or not np.isfinite(self.k):
            raise ValueError(f"env.k = {self.k!r} is invalid: must be a finite number >= 0")

    def payoff(self) -> tuple[tuple[float, ...], ...]:
        """The 3x3 payoff matrix ``[a0][a1]``."""
        return penalty_payoff(self.k)


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
        if not isinstance(num_envs, (int, np.integer)) or isinstance(num_envs, bool) or (
            num_envs < 1
        ):
            raise ValueError(f"num_envs={num_envs!r} is invalid: must be an int >= 1")
        self.payoff = _payoff_array(payoff)
        self._flat = self.payoff.ravel()
        self._optimal = self._flat == self._flat.max()  # [9] joint action is optimal
        self.num_envs = b = int(num_envs)
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
        actions = np.asarray(actions)
        check_actions(actions, self.spec)
        if actions.shape[0] != self.num_envs:
            raise ValueError(
                f"actions must have shape [{self.num_envs}, 2] (envs x agents {list(AGENTS)}), "
                f"got {tuple(actions.shape)}"
            )
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


class MatrixGameEnv(ParallelEnv):
    """PettingZoo ``ParallelEnv`` of a one-step 3x3 matrix game over a one-env core.

    ``infos[agent]`` after the step holds ``optimal`` and ``joint_action``.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "name": "matrix_game_v0",
        "render_modes": ["ansi"],
        "is_parallelizable": True,
    }

    def __init__(
        self,
        payoff: Any = CLIMBING_PAYOFF,
        name: str = "matrix_game_v0",
        render_mode: str | None = None,
    ) -> None:
        super().__init__()
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode={render_mode!r} is invalid: must be None or one of "
                f"{self.metadata['render_modes']}"
            )
        self.metadata = {**self.metadata, "name": name}
        self.render_mode = render_mode
        self.core = MatrixGameCore(payoff, num_envs=1, autoreset=False)
        self.possible_agents = list(AGENTS)
        self.agents: list[str] = []
        self.observation_spaces = {
            a: spaces.Box(0.0, 1.0, (OBS_DIM,), np.float32) for a in self.possible_agents
        }
        self.action_spaces = {a: spaces.Discrete(N_ACTIONS) for a in self.possible_agents}
        self.state_space = spaces.Box(0.0, 1.0, (STATE_DIM,), np.float32)
        self._actions = np.zeros((1, 2), np.int64)
        self._last: tuple[int, int] | None = None

    def observation_space(self, agent: str) -> spaces.Box:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Discrete:
        return self.action_spaces[agent]

    def state(self) -> np.ndarray:
        return self.core.buf.state[0].copy()

    def _observations(self) -> dict[str, np.ndarray]:
        return {a: self.core.buf.obs[0, i].copy() for i, a in enumerate(self.possible_agents)}

    def reset(self, seed: int | None = None, options: dict | None = None):
        self.core.reset(seed)
        self.agents = list(self.possible_agents)
        self._last = None
        return self._observations(), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise RuntimeError(
                "step() called with no live agents: the episode has ended (or reset() was "
                "never called); call reset() first"
            )
        if not isinstance(actions, Mapping):
            raise TypeError(f"actions must be a dict agent -> action, got {type(actions)}")
        unknown = [a for a in actions if a not in self.possible_agents]
        if unknown:
            raise ValueError(f"unknown agent(s) {unknown}: agents are {self.agents}")
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ValueError(f"no action given for agent(s) {missing}")
        for i, agent in enumerate(self.possible_agents):
            a = actions[agent]
            a = a.item() if isinstance(a, np.ndarray) and a.size == 1 else a
            if not isinstance(a, (int, np.integer)) or isinstance(a, bool) or not (
                0 <= a < N_ACTIONS
            ):
                raise ValueError(
                    f"invalid action {a!r} for agent {agent!r}: allowed actions are "
                    f"0..{N_ACTIONS - 1}"
                )
            self._actions[0, i] = a
        buf = self.core.step(self._actions)
        self._last = (int(self._actions[0, 0]), int(self._actions[0, 1]))
        agents = self.possible_agents
        obs = self._observations()
        rewards = {a: float(buf.reward[0, i]) for i, a in enumerate(agents)}
        info = {k: float(buf.episode[k][0]) for k in EPISODE_METRICS}
        infos = {a: dict(info) for a in agents}
        terminations = dict.fromkeys(agents, True)
        truncations = dict.fromkeys(agents, False)
        self.agents = []
        return obs, rewards, terminations, truncations, infos

    def render(self) -> str | None:
        if self.render_mode is None:
            return None
        rows = []
        for i, row in enumerate(self.core.payoff):
            cells = []
            for j, v in enumerate(row):
                mark = "*" if self._last == (i, j) else " "
                cells.append(f"{mark}{v:7.1f}")
            rows.append(" ".join(cells))
        return "\n".join(rows) + "\n"

    def close(self) -> None:
        self.core.close()


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
        data = {str(k): cfg[k] for k in cfg}
        cls = {"climbing": ClimbingEnvConfig, "penalty": PenaltyEnvConfig}.get(data.get("name"))
        if cls is None:
            raise ValueError(
                f"env.name = {data.get('name')!r} is invalid: choose climbing or penalty"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(k for k in data if k not in names and k[:1] != "_")
        if unknown:
            raise TypeError(f"unknown {cls.__name__} field(s) {unknown}; valid: {sorted(names)}")
        cfg = cls(**{k: v for k, v in data.items() if k in names})
    return MatrixGameCore(cfg, num_envs=num_envs, seed=seed)
