"""Environment registry: ``env.name`` -> (config schema, batched-env factory).

Plain dicts filled here, not by import side effects elsewhere: the list of envs is this
file. Each env's config dataclass (in the light :mod:`marl.envs.configs`) carries a
``name`` field that selects it. Factories are ``"module:function"`` strings imported on
first use, so ``import marl.envs`` loads no gymnasium, PettingZoo, SuperSuit, ALE or JAX
(the learner imports :mod:`marl.envs.base` for types, config registration
``ENV_CONFIGS``). A factory is called as ``factory(cfg, num_envs, seed)``.
"""

from __future__ import annotations

import importlib
from typing import Any

from marl.envs.base import EnvSpec, VecBuffers, VecEnv, check_actions
from marl.envs.configs import (
    BanditEnvConfig,
    BoxPushEnvConfig,
    CartPoleEnvConfig,
    ClimbingEnvConfig,
    PenaltyEnvConfig,
    PettingZooEnvConfig,
    PongEnvConfig,
)
from marl.envs.dpomdp.config import DPOMDPEnvConfig  # light: numpy and the stdlib
from marl.envs.jaxmarl import JaxMarlEnvConfig  # light: jax is imported on use

ENV_CONFIGS: dict[str, type] = {
    "boxpush": BoxPushEnvConfig,
    "bandit": BanditEnvConfig,
    "cartpole": CartPoleEnvConfig,
    "pong": PongEnvConfig,
    "pettingzoo": PettingZooEnvConfig,
    "climbing": ClimbingEnvConfig,
    "penalty": PenaltyEnvConfig,
    "jaxmarl": JaxMarlEnvConfig,
    "dpomdp": DPOMDPEnvConfig,
}
"""Env name -> config schema (registered in Hydra's ConfigStore as ``<name>_schema``)."""

FACTORIES: dict[str, str] = {
    "boxpush": "marl.envs.boxpush:BoxPushCore",
    "bandit": "marl.envs.bandit:BanditCore",
    "cartpole": "marl.envs.classic:make_gymnasium_vec",
    "pong": "marl.envs.atari:PongCore",
    "pettingzoo": "marl.envs.pettingzoo:make_pettingzoo_vec_env",
    "climbing": "marl.envs.matrix:make_matrix_vec_env",
    "penalty": "marl.envs.matrix:make_matrix_vec_env",
    "jaxmarl": "marl.envs.jaxmarl:JaxMarlVecEnv",
    "dpomdp": "marl.envs.dpomdp:DPOMDPCore",
}
"""Env name -> ``"module:callable"`` building the batched env, imported on use."""


def make_vec_env(cfg: Any, num_envs: int, seed: int | None = None) -> VecEnv:
    """Build ``num_envs`` auto-resetting copies of the env described by ``cfg``."""
    name = getattr(cfg, "name", None)
    if name not in FACTORIES:
        raise ValueError(f"unknown env {name!r}: available envs are {sorted(FACTORIES)}")
    if num_envs < 1:
        raise ValueError(f"num_envs = {num_envs} is invalid: must be >= 1")
    module, attr = FACTORIES[name].split(":")
    return getattr(importlib.import_module(module), attr)(cfg, num_envs, seed)


__all__ = [
    "ENV_CONFIGS", "FACTORIES", "BanditEnvConfig", "BoxPushEnvConfig", "CartPoleEnvConfig",
    "ClimbingEnvConfig", "EnvSpec", "JaxMarlEnvConfig", "PenaltyEnvConfig", "PettingZooEnvConfig",
    "PongEnvConfig",
    "VecBuffers", "VecEnv", "check_actions", "make_vec_env",
]
