"""The batched environment interface every learner-facing env implements.

The runner never talks to a PettingZoo env one step and one agent at a time. It talks
to a :class:`VecEnv`: ``B`` auto-resetting copies of one multi-agent env stepped at
once, whose outputs are fixed-shape numpy arrays. Envs we write ourselves (box pushing,
the bandit, the matrix games) implement the rules once over the batch in numpy; envs
from elsewhere are wrapped by an adapter. Either way the runner sees the same thing.

Shape letters: B parallel envs, N agents, O observation features, S state features,
A actions.

Ownership: :attr:`VecEnv.buf` is allocated once and overwritten in place by every
``reset`` and ``step``; callers copy what they keep. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

AGENT = "player_0"
"""Name of the single agent of every one-agent env (N = 1)."""


@dataclass(frozen=True)
class EnvSpec:
    """Static description of a batched env, all the learner needs to build its nets."""

    agents: tuple[str, ...]
    """Agent names, in the order of the N axis."""
    obs_shape: tuple[int, ...]
    """Per-agent observation shape: ``(O,)`` for vectors, ``(C, H, W)`` for pixels."""
    state_dim: int
    """S, length of the global state vector given to centralised critics."""
    n_actions: int
    """A, size of every agent's discrete action space."""
    obs_dtype: str = "float32"
    """numpy dtype of observations: float32, or uint8 for pixels (saves 4x memory)."""
    has_action_mask: bool = False
    """Whether :attr:`VecBuffers.action_mask` carries information (else all True)."""
    state_is_concat_obs: bool = False
    """True when the env has no ``state()`` and S is the concatenated observations."""
    episode_metrics: tuple[str, ...] = ()
    """Names of the per-episode statistics in :attr:`VecBuffers.episode` (e.g. success).
    Each reaches the metrics rows as ``train/<name>_mean`` and ``eval/<name>_mean``
    (:func:`marl.io.metrics.summarise_episodes`) and the metric hooks through
    ``Rollout.episodes``; the success metric as ``<prefix>/success_rate``."""
    success_metric: str | None = None
    """Which episode metric, if any, is the task's success indicator in [0, 1]."""
    episode_limit: int | None = None
    """Longest possible episode in steps (its time limit, or an upper bound); None when
    the env has none it can tell. Learners that store whole episodes check it."""
    credit_metrics: Callable[[dict[str, np.ndarray], tuple[str, ...]], dict[str, float]] \
        | None = None
    """The env's own credit metrics: per-episode arrays (``VecBuffers.episode`` over
    finished episodes, plus ``length``) and the agent names -> ``{<agent>/<name>: value}``,
    logged under ``credit/`` (training) and ``eval/credit/`` (evaluation)."""

    @property
    def n_agents(self) -> int:
        return len(self.agents)


@dataclass
class VecBuffers:
    """Output arrays of a batched env, allocated once and overwritten by each step.

    After ``step(actions)``, for every env ``b`` whose episode ended in that step
    (``terminated[b] or truncated[b]``): ``final_obs[b]``, ``final_state[b]`` and
    ``final_action_mask[b]`` hold the last observation, state and action mask of the ended
    episode, ``final_alive[b]`` which agents were still in it at the end (see below),
    ``episode[k][b]`` its statistics, and ``obs[b]`` / ``state[b]`` already the
    first observation of the next episode. For envs that did not end, ``final_*`` and
    ``episode`` entries are stale. Envs built without auto-reset (the PettingZoo facades)
    keep the final observation in ``obs[b]`` and set ``alive[b] = False`` instead.
    Rows of ``action_mask`` for agents that are not alive are all True (never empty).

    Episode statistics: a native env writes ``episode[k][b]`` for each name ``k`` of
    ``EnvSpec.episode_metrics`` when episode ``b`` ends; the runner's tracker copies them
    for the ended envs, and they reach the metrics rows (``train/<k>_mean``,
    ``eval/<k>_mean``). An adapter may add names as they are first reported (the
    PettingZoo adapter's ``info/<key>`` from the env's ``infos``), NaN for an ended
    episode that did not report one; NaN is skipped in the means.

    Per-agent episode ends: ``terminated[b]`` / ``truncated[b]`` describe the env; when
    agents end differently in its last step (one terminated, another truncated), the env
    is ``truncated`` and ``final_alive[b, n]`` is False for every agent that terminated in
    that step or had left before: a truncated episode bootstraps only the agents whose
    ``final_alive`` is True. Envs whose agents all end together leave it all True.
    """

    obs: np.ndarray  # [B, N, *obs_shape] spec.obs_dtype
    state: np.ndarray  # [B, S] float32
    reward: np.ndarray  # [B, N] float32
    terminated: np.ndarray  # [B] bool: the episode reached a terminal state
    truncated: np.ndarray  # [B] bool: the episode was cut (time limit), not terminal
    final_obs: np.ndarray  # [B, N, *obs_shape] spec.obs_dtype
    final_state: np.ndarray  # [B, S] float32
    action_mask: np.ndarray  # [B, N, A] bool, True = allowed
    final_action_mask: np.ndarray  # [B, N, A] bool, action mask at final_obs
    final_alive: np.ndarray  # [B, N] bool: agent still in the ended episode (not terminated)
    alive: np.ndarray  # [B, N] bool: agent acts in this step (False once it is done)
    # name -> [B] float32: the ended episodes' statistics (see the class docstring)
    episode: dict[str, np.ndarray] = field(default_factory=dict)

    def start_episodes(self) -> None:
        """After a reset of every env: no reward, no episode end, every agent alive."""
        self.reward[:] = 0.0
        self.terminated[:] = False
        self.truncated[:] = False
        self.alive[:] = True

    @classmethod
    def allocate(cls, spec: EnvSpec, num_envs: int) -> VecBuffers:
        b, n = num_envs, spec.n_agents
        return cls(
            obs=np.zeros((b, n, *spec.obs_shape), spec.obs_dtype),
            state=np.zeros((b, spec.state_dim), np.float32),
            reward=np.zeros((b, n), np.float32),
            terminated=np.zeros(b, bool),
            truncated=np.zeros(b, bool),
            final_obs=np.zeros((b, n, *spec.obs_shape), spec.obs_dtype),
            final_state=np.zeros((b, spec.state_dim), np.float32),
            action_mask=np.ones((b, n, spec.n_actions), bool),
            final_action_mask=np.ones((b, n, spec.n_actions), bool),
            final_alive=np.ones((b, n), bool),
            alive=np.ones((b, n), bool),
            episode={k: np.zeros(b, np.float32) for k in spec.episode_metrics},
        )


@runtime_checkable
class VecEnv(Protocol):
    """B auto-resetting copies of one multi-agent env with discrete actions."""

    spec: EnvSpec
    num_envs: int
    buf: VecBuffers

    def reset(self, seed: int | None = None) -> VecBuffers:
        """Start a new episode in every env; ``seed`` makes the batch reproducible."""
        ...

    def step(self, actions: np.ndarray) -> VecBuffers:
        """Apply ``actions`` ([B, N] integer) to every env, auto-resetting ended ones.

        Raises ValueError naming the agent and the action for an action outside
        ``[0, A)`` or one the action mask forbids.
        """
        ...

    def close(self) -> None: ...


class ResumableVecEnv(VecEnv, Protocol):
    """A VecEnv whose exact state can be saved in a checkpoint and restored.

    ``get_state()`` returns a picklable dict with everything needed to continue exactly
    as if never interrupted: internal arrays (copies), RNG states
    (``rng.bit_generator.state``), episode counters, and the current contents of
    :attr:`buf` the runner reads (obs, state, action_mask, alive). ``set_state(d)``
    restores it into an env built with the same config and ``num_envs`` (raise
    ValueError naming the mismatch otherwise). Envs that cannot do this (e.g. emulators
    without state access) simply do not define the methods; resuming them starts fresh
    episodes, with a warning.
    """

    def get_state(self) -> dict: ...

    def set_state(self, state: dict) -> None: ...


_RUNNER_FIELDS = ("obs", "state", "reward", "terminated", "truncated", "action_mask", "alive")


def buffers_state(buf: VecBuffers) -> dict[str, np.ndarray]:
    """Copies of the buffer arrays a runner reads between steps (for ``get_state``)."""
    return {k: getattr(buf, k).copy() for k in _RUNNER_FIELDS}


def restore_buffers(buf: VecBuffers, saved: dict[str, np.ndarray]) -> None:
    """Write :func:`buffers_state` output back in place (shapes must match)."""
    for k in _RUNNER_FIELDS:
        dst, src = getattr(buf, k), saved[k]
        if dst.shape != src.shape:
            raise ValueError(f"saved env buffer {k!r} has shape {src.shape}, this env has "
                             f"{dst.shape} (different num_envs or env config?)")
        dst[...] = src


def save_state(env: VecEnv, config: dict, **parts: Any) -> dict[str, Any]:
    """``get_state`` output: ``num_envs``, ``config`` (what a restore must match), the
    buffers the runner reads and the env's own ``parts`` (copies, RNG states)."""
    return {"num_envs": env.num_envs, "config": config, "buf": buffers_state(env.buf), **parts}


def load_state(env: VecEnv, kind: str, state: dict, config: dict, saved_as: str = "") -> None:
    """Restore the buffers of :func:`save_state` output after checking it was made with
    this env's ``num_envs`` and ``config`` (ValueError naming the difference otherwise);
    the caller restores its own parts."""
    theirs = state.get("config", {})
    diff = sorted(k for k in config if config[k] != theirs.get(k))
    if state.get("num_envs") != env.num_envs or diff:
        values = "".join(f"; saved {k}={theirs.get(k)!r}" for k in diff)
        raise ValueError(
            f"saved {kind} state is for {saved_as}num_envs={state.get('num_envs')} (config "
            f"fields differing: {diff or 'none'}{values}); this env has num_envs={env.num_envs}"
        )
    restore_buffers(env.buf, state["buf"])


def check_actions(actions: np.ndarray, spec: EnvSpec, mask: np.ndarray | None = None) -> None:
    """Raise ValueError naming the first agent whose action is out of range or masked.

    ``actions``: [B, N] integer array; ``mask``: [B, N, A] bool or None. Costs two
    reductions on the happy path, so batched envs call it every step.
    """
    if actions.ndim != 2 or actions.shape[1] != spec.n_agents:
        raise ValueError(
            f"actions must have shape [B, {spec.n_agents}] (one per agent of "
            f"{list(spec.agents)}), got {tuple(actions.shape)}"
        )
    if not np.issubdtype(actions.dtype, np.integer):
        raise ValueError(f"actions must be integers, got dtype {actions.dtype}")
    bad = (actions < 0) | (actions >= spec.n_actions)
    if bad.any():
        b, n = np.argwhere(bad)[0]
        raise ValueError(
            f"invalid action {int(actions[b, n])} for agent {spec.agents[n]!r} (env {b}): "
            f"allowed actions are 0..{spec.n_actions - 1}"
        )
    if mask is not None and spec.has_action_mask:
        taken = np.take_along_axis(mask, actions[..., None].astype(np.intp), axis=-1)[..., 0]
        if not taken.all():
            b, n = np.argwhere(~taken)[0]
            allowed = np.flatnonzero(mask[b, n]).tolist()
            raise ValueError(
                f"action {int(actions[b, n])} is masked for agent {spec.agents[n]!r} "
                f"(env {b}): allowed actions now are {allowed}"
            )
