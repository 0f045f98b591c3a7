"""How one PettingZoo env's outputs map onto the batched buffers, found by inspecting it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from marl.envs.configs import PettingZooEnvConfig
from marl.envs.pettingzoo.resolve import unsupported


@dataclass(frozen=True)
class Layout:
    """How one env's outputs map onto the VecBuffers (picklable, sent to workers)."""

    agents: tuple[str, ...]  # the env's possible_agents, in order: the N agents
    n_actions: int  # A, the size of the one Discrete action space every agent has
    native_shape: tuple[int, ...]  # observation shape as the env gives it
    obs_shape: tuple[int, ...]  # as stored: (O,), (C, H, W), ...
    obs_kind: str  # "same", "hwc" (transpose), "hw" (add channel), "flat"
    obs_dtype: str  # "uint8" when every agent's observation space is uint8, else "float32"
    mask_mode: str | None  # None, "obs" (Dict observation), "info"
    state_from_env: bool  # state is env.state() (env.state auto or env, and it has one)
    state_dim: int  # S: env.state()'s size, else N x O, or 0 for images (the critic encodes)


def _obs_part(space: Any) -> Any:
    if isinstance(space, spaces.Dict):
        return space.spaces.get("observation")
    return space


def inspect_env(env: Any, cfg: PettingZooEnvConfig, seed: int | None = None) -> Layout:
    """Check ``env`` (a wrapped ParallelEnv) against what the adapter supports; reset it."""
    agents = tuple(getattr(env, "possible_agents", ()) or ())
    if not agents:
        raise unsupported(cfg.id, "the env has no possible_agents")
    n_actions = _n_actions(env, agents, cfg.id)
    native, obs_dtype, mask_mode = _observations(env, agents, cfg.id)
    kind, shape = _obs_kind(native, obs_dtype, cfg.obs_layout)
    # Reset once: info masks and the state.
    obs, infos = env.reset(seed=seed)
    if mask_mode is None and isinstance(infos, Mapping) and any(
        isinstance(v, Mapping) and "action_mask" in v for v in infos.values()
    ):
        mask_mode = "info"
    state_from_env, state_dim = _state(env, cfg, len(agents), shape)
    return Layout(
        agents=agents,
        n_actions=n_actions,
        native_shape=native,
        obs_shape=tuple(shape),
        obs_kind=kind,
        obs_dtype=obs_dtype,
        mask_mode=mask_mode,
        state_from_env=state_from_env,
        state_dim=state_dim,
    )


def _n_actions(env: Any, agents: tuple[str, ...], env_id: str) -> int:
    """A, the one Discrete action-space size of every agent."""
    sizes = {}
    for a in agents:
        sp = env.action_space(a)
        if not isinstance(sp, spaces.Discrete):
            hint = ""
            if isinstance(sp, spaces.Box):
                hint = (
                    " (choose the env's discrete variant in env.kwargs, e.g. "
                    "continuous_actions: false or continuous: false)"
                )
            raise unsupported(
                env_id,
                f"only Discrete action spaces are supported; agent {a!r} has {sp}{hint}",
            )
        if int(sp.start) != 0:
            raise unsupported(
                env_id, f"agent {a!r} has {sp} with start={int(sp.start)}: actions must start at 0"
            )
        sizes[a] = int(sp.n)
    if len(set(sizes.values())) > 1:
        raise unsupported(
            env_id,
            f"agents have Discrete action spaces of different sizes {sizes}; add the SuperSuit "
            "wrapper pad_action_space_v0 to env.wrappers",
        )
    return next(iter(sizes.values()))


def _observations(
    env: Any, agents: tuple[str, ...], env_id: str
) -> tuple[tuple[int, ...], str, str | None]:
    """(native shape, stored dtype, mask mode) of the agents' observations (one shape;
    Dict observations carry the action mask)."""
    mask_modes, shapes, dtypes = set(), {}, set()
    for a in agents:
        sp = env.observation_space(a)
        if isinstance(sp, spaces.Dict):
            if "observation" not in sp.spaces:
                raise unsupported(
                    env_id,
                    f"agent {a!r} has a Dict observation space without an 'observation' "
                    f"entry (keys {list(sp.spaces)}); only {{observation, action_mask}} "
                    "dicts are supported",
                )
            mask_modes.add("obs" if "action_mask" in sp.spaces else None)
        base = _obs_part(sp)
        shape = getattr(base, "shape", None)
        if not isinstance(base, (spaces.Box, spaces.MultiBinary, spaces.MultiDiscrete)) or (
            not shape
        ):
            raise unsupported(
                env_id,
                f"agent {a!r} has observation space {base}; only Box (or MultiBinary / "
                "MultiDiscrete) observations with a shape are supported",
            )
        shapes[a] = tuple(int(s) for s in shape)
        dtypes.add(np.dtype(base.dtype))
    if len(set(shapes.values())) > 1:
        raise unsupported(
            env_id,
            f"agents' observations have different shapes {shapes}; add the SuperSuit wrapper "
            "pad_observations_v0 to env.wrappers",
        )
    if len(mask_modes) > 1:
        raise unsupported(env_id, "some agents' observations carry an action_mask and others not")
    mask_mode = next(iter(mask_modes)) if mask_modes else None
    obs_dtype = "uint8" if dtypes == {np.dtype(np.uint8)} else "float32"
    return next(iter(shapes.values())), obs_dtype, mask_mode


def _obs_kind(native: tuple[int, ...], obs_dtype: str, layout: str) -> tuple[str, tuple]:
    """How observations are stored: (kind, stored shape), see :class:`Layout`."""
    image = layout in ("hwc", "chw") or (layout == "auto" and obs_dtype == "uint8")
    if len(native) == 1:
        kind, shape = "same", native
    elif image and len(native) == 2:
        kind, shape = "hw", (1, *native)
    elif image and len(native) == 3:
        h, w, c = native
        hwc = layout == "hwc" or (layout == "auto" and c < h and c < w)
        kind, shape = ("hwc", (c, h, w)) if hwc else ("same", native)
    else:
        kind, shape = "flat", (math.prod(native),)
    return kind, shape


def _state(env: Any, cfg: PettingZooEnvConfig, n_agents: int, shape: tuple) -> tuple[bool, int]:
    """(state from env.state()?, S) as ``cfg.state`` asks, for an env that was reset."""
    obs_size = math.prod(shape)
    # Without an env state the learner uses the observations: vectors concatenated here;
    # pixels (S = 0 here) encoded by the critic's conv torso and concatenated there, so no
    # copy of every agent's frames is stored twice per step.
    state_from_env = False
    state_dim = 0 if len(shape) == 3 else n_agents * obs_size
    if cfg.state in ("auto", "env"):
        try:
            st = np.asarray(env.state())
        except (NotImplementedError, AttributeError) as e:
            if cfg.state == "env":
                raise ValueError(
                    f"env.state = 'env' is invalid: {cfg.id} does not implement state() "
                    f"({type(e).__name__}: {e}); use auto or concat_obs"
                ) from e
        else:
            if st.size == 0 or not np.issubdtype(st.dtype, np.number):
                raise ValueError(
                    f"env.state = {cfg.state!r} is invalid: {cfg.id}'s state() gave "
                    f"{st.dtype} {st.shape}, not a numeric array; use concat_obs"
                )
            state_from_env, state_dim = True, int(st.size)
    return state_from_env, state_dim


def env_seeds(seed: int | None, num_envs: int) -> list[int | None]:
    """The reset seed of each of ``num_envs`` envs for a batch ``seed`` (< 2**31 each)."""
    if seed is None:
        return [None] * num_envs
    words = np.random.SeedSequence(int(seed)).generate_state(num_envs, np.uint32)
    return [int(w >> 1) for w in words]

