"""The parsed Dec-POMDP (:class:`DecPOMDP`) and the loader's one error type."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from marl.schema import ConfigError

PROB_TOL = 1e-6
"""How far from 1 a row of T or O (and the start distribution) may sum."""


class DPOMDPParseError(ConfigError):
    """A ``.dpomdp`` file that does not parse: ``<file>:<line>: expected <what>``."""

    def __init__(self, file: str, line: int, expected: str) -> None:
        self.file, self.line, self.expected = str(file), int(line), expected
        super().__init__(f"{file}:{line}: expected {expected}")

    def __reduce__(self):
        return type(self), (self.file, self.line, self.expected)



@dataclass(frozen=True, eq=False)
class DecPOMDP:
    """A discrete Dec-POMDP: names, start distribution and the T, O, R tables.

    Joint actions and joint observations are indices (the last agent's component
    varies fastest). The arrays are float64 and read-only.
    """

    name: str
    """The problem's name (the file name without ``.dpomdp`` / ``.gz``)."""
    agents: tuple[str, ...]
    """The N agents' names, the env's agent ids (``agent_0``, ``agent_1``, ... when the
    file gives a count)."""
    states: tuple[str, ...]
    """The S hidden states' names (indices as strings when the file gives a count)."""
    actions: tuple[tuple[str, ...], ...]
    """Per agent, its action names (indices as strings when the file gives a count)."""
    observations: tuple[tuple[str, ...], ...]
    """Per agent, its observation names (indices as strings when the file gives a
    count)."""
    start: np.ndarray
    """``[S]`` the start-state distribution b0."""
    transition: np.ndarray
    """``[S, JA, S]`` ``T(s' | s, ja)``."""
    observation: np.ndarray
    """``[JA, S, JO]`` ``O(jo | ja, s')``."""
    reward: np.ndarray
    """``[S, JA]`` the expected immediate team reward ``R(s, ja)``."""
    reward_full: np.ndarray | None
    """``[S, JA, S, JO]`` ``R(s, ja, s', jo)`` when the file's rewards depend on s' or
    jo, else None (the reward is ``reward[s, ja]`` whatever follows)."""
    discount: float
    """The file's ``discount:`` (the env ignores it and sums rewards undiscounted)."""
    source: str = "<string>"
    """Where the model was read from (file path), for messages."""

    @property
    def n_agents(self) -> int:
        return len(self.agents)

    @property
    def n_states(self) -> int:
        return len(self.states)

    @property
    def n_actions(self) -> tuple[int, ...]:
        """Per agent, its number of actions."""
        return tuple(len(a) for a in self.actions)

    @property
    def n_obs(self) -> tuple[int, ...]:
        """Per agent, its number of observations."""
        return tuple(len(o) for o in self.observations)

    @property
    def n_joint_actions(self) -> int:
        return math.prod(self.n_actions)

    @property
    def n_joint_obs(self) -> int:
        return math.prod(self.n_obs)

    def joint_action(self, actions: Sequence[int]) -> int:
        """The joint-action index of one individual action per agent."""
        return int(np.ravel_multi_index(tuple(int(a) for a in actions), self.n_actions))

    def individual_actions(self, ja: int) -> tuple[int, ...]:
        """The individual actions of joint action ``ja``."""
        return tuple(int(a) for a in np.unravel_index(int(ja), self.n_actions))

    def joint_obs(self, obs: Sequence[int]) -> int:
        """The joint-observation index of one individual observation per agent."""
        return int(np.ravel_multi_index(tuple(int(o) for o in obs), self.n_obs))

    def individual_obs(self, jo: int) -> tuple[int, ...]:
        """The individual observations of joint observation ``jo``."""
        return tuple(int(o) for o in np.unravel_index(int(jo), self.n_obs))

    def obs_table(self) -> np.ndarray:
        """``[JO, N]`` the individual observations of every joint observation."""
        return np.stack(np.unravel_index(np.arange(self.n_joint_obs), self.n_obs), 1)

    def action_strides(self) -> np.ndarray:
        """``[N]`` int64 such that ``actions @ strides`` is the joint-action index."""
        sizes = self.n_actions
        return np.array([math.prod(sizes[i + 1:]) for i in range(len(sizes))], np.int64)

    def joint_action_name(self, ja: int) -> str:
        return " ".join(self.actions[i][a] for i, a in enumerate(self.individual_actions(ja)))

    def joint_obs_name(self, jo: int) -> str:
        return " ".join(self.observations[i][o] for i, o in enumerate(self.individual_obs(jo)))

    def digest(self) -> str:
        """A short hash of the model's sizes and tables (what a saved env must match)."""
        h = hashlib.sha256(repr((self.agents, self.states, self.actions,
                                 self.observations)).encode())
        for arr in (self.start, self.transition, self.observation, self.reward,
                    self.reward_full):
            if arr is not None:
                h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()[:16]
