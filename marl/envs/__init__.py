"""Environment registry: ``env.name`` -> (config schema, batched-env factory).

A plain dict filled here, not by import side effects elsewhere: the list of envs is
this file. Each env's config dataclass carries a ``name`` field that selects it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from marl.envs.atari import PongCore, PongEnvConfig
from marl.envs.bandit import BanditCore, BanditEnvConfig
from marl.envs.base import EnvSpec, VecBuffers, VecEnv, check_actions
from marl.envs.boxpush import BoxPushConfig, BoxPushCore
from marl.envs.classic import CartPoleEnvConfig, make_gymnasium_vec
from marl.envs.jaxmarl import JaxMarlEnvConfig
from marl.envs.matrix import ClimbingEnvConfig, PenaltyEnvConfig, make_matrix_vec_env
from marl.envs.pettingzoo import PettingZooEnvConfig, make_pettingzoo_vec_env


@dataclass
class BoxPushEnvConfig(BoxPushConfig):
    """Two-robot box pushing (DESIGN.md section 4)."""

    name: str = "boxpush"
    """Registry key of the env."""


ENV_CONFIGS: dict[str, type] = {
    "boxpush": BoxPushEnvConfig,
    "bandit": BanditEnvConfig,
    "cartpole": CartPoleEnvConfig,
    "pong": PongEnvConfig,
    "pettingzoo": PettingZooEnvConfig,
    "climbing": ClimbingEnvConfig,
    "penalty": PenaltyEnvConfig,
    "jaxmarl": JaxMarlEnvConfig,
}
"""Env name -> config schema (registered in Hydra's ConfigStore as ``<name>_schema``)."""

_FACTORIES: dict[str, Callable[[Any, int, int | None], VecEnv]] = {
    "boxpush": lambda cfg, n, seed: BoxPushCore(cfg, num_envs=n, seed=seed),
    "bandit": lambda cfg, n, seed: BanditCore(cfg, num_envs=n, seed=seed),
    "cartpole": make_gymnasium_vec,
    "pong": lambda cfg, n, seed: PongCore(cfg, num_envs=n, seed=seed),
    "pettingzoo": make_pettingzoo_vec_env,
    "climbing": make_matrix_vec_env,
    "penalty": make_matrix_vec_env,
    "jaxmarl": lambda cfg, n, seed: _make_jaxmarl(cfg, n, seed),
}


def _make_jaxmarl(cfg: Any, num_envs: int, seed: int | None) -> VecEnv:
    """Imports jax only when a JaxMARL env is asked for (marl.envs.jaxmarl does not)."""
    from marl.envs.jaxmarl import JaxMarlVecEnv

    return JaxMarlVecEnv(cfg, num_envs=num_envs, seed=seed)


def make_vec_env(cfg: Any, num_envs: int, seed: int | None = None) -> VecEnv:
    """Build ``num_envs`` auto-resetting copies of the env described by ``cfg``."""
    name = getattr(cfg, "name", None)
    if name not in _FACTORIES:
        raise ValueError(f"unknown env {name!r}: available envs are {sorted(_FACTORIES)}")
    if num_envs < 1:
        raise ValueError(f"num_envs = {num_envs} is invalid: must be >= 1")
    return _FACTORIES[name](cfg, num_envs, seed)


__all__ = ["ENV_CONFIGS", "EnvSpec", "VecBuffers", "VecEnv", "check_actions", "make_vec_env"]
