"""Environment table: ``env.name`` -> :class:`EnvRow` (config schema, batched-env factory).

One table, filled here and not by import side effects elsewhere: the list of envs is
:data:`ENVS`. Each row's config dataclass (in the light :mod:`marl.envs.configs`) carries
a ``name`` field that selects it, and is registered in Hydra's ConfigStore as
``<name>_schema`` (:func:`marl.build.register_configs`). Factories are
``"module:callable"`` strings imported on first use, so ``import marl.envs`` loads no
gymnasium, PettingZoo, SuperSuit, ALE or JAX. A factory is called as
``factory(cfg, num_envs, seed)`` and returns a :class:`VecEnv`.

A plugin env needs no edit here: ``env=plugin env.name=<module>:<attr>`` names an
:class:`EnvRow` in the user's own file (found through ``plugin_path``, see
:mod:`marl.schema`), and ``env.options`` holds the fields of that row's config
dataclass, typed and checked by it (:class:`PluginEnvConfig`).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from marl.envs.base import EnvSpec, VecBuffers, VecEnv, check_actions
from marl.envs.checks import plain
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
from marl.schema import ConfigError, is_plugin, lookup


@dataclass(frozen=True)
class EnvRow:
    """One env: its config dataclass and the factory that builds ``num_envs`` copies."""

    config: type
    """Config dataclass; its instances are what the factory receives."""
    factory: str | Callable[..., VecEnv]
    """``factory(cfg, num_envs, seed) -> VecEnv``, or ``"module:callable"`` naming it
    (imported on first use, so the table stays light)."""

    def build(self, cfg: Any, num_envs: int, seed: int | None = None) -> VecEnv:
        """``num_envs`` auto-resetting copies of the env ``cfg`` (a :attr:`config`)."""
        factory = self.factory
        if isinstance(factory, str):
            module, attr = factory.split(":")
            factory = getattr(importlib.import_module(module), attr)
        return factory(cfg, num_envs, seed)


ENVS: dict[str, EnvRow] = {
    "boxpush": EnvRow(BoxPushEnvConfig, "marl.envs.boxpush:BoxPushCore"),
    "bandit": EnvRow(BanditEnvConfig, "marl.envs.bandit:BanditCore"),
    "cartpole": EnvRow(CartPoleEnvConfig, "marl.envs.classic:make_gymnasium_vec"),
    "pong": EnvRow(PongEnvConfig, "marl.envs.atari:PongCore"),
    "pettingzoo": EnvRow(PettingZooEnvConfig, "marl.envs.pettingzoo:make_pettingzoo_vec_env"),
    "climbing": EnvRow(ClimbingEnvConfig, "marl.envs.matrix:make_matrix_vec_env"),
    "penalty": EnvRow(PenaltyEnvConfig, "marl.envs.matrix:make_matrix_vec_env"),
    "jaxmarl": EnvRow(JaxMarlEnvConfig, "marl.envs.jaxmarl:JaxMarlVecEnv"),
    "dpomdp": EnvRow(DPOMDPEnvConfig, "marl.envs.dpomdp:DPOMDPCore"),
}
"""Env name -> its row. A ``module:attr`` name instead names an :class:`EnvRow` of the
user's code (:func:`env_row`)."""

ENV_CONFIGS: dict[str, type] = {name: row.config for name, row in ENVS.items()}
"""Env name -> config schema: a read-only view of :data:`ENVS` for older importers."""


def env_row(name: str, field: str = "env.name") -> EnvRow:
    """The row ``name`` names: one of :data:`ENVS`, or a plugin ``module:attr`` (which must
    be an :class:`EnvRow`); a one-line :class:`ConfigError` otherwise."""
    row = lookup(ENVS, name, field)
    if not isinstance(row, EnvRow):
        raise ConfigError(f"{field} = {name!r} is invalid: a plugin env is a "
                          f"marl.envs.EnvRow(config, factory), not a {type(row).__name__}")
    return row


@dataclass
class PluginEnvConfig:
    """An env from the user's code, ``env=plugin`` (registered by
    :func:`marl.build.register_configs`; no file of ``conf/env/``): ``name`` is the
    ``module:attr`` of its :class:`EnvRow`, ``options`` the fields of the row's config.

    Hydra composes the config before the plugin is imported, so only this generic schema
    can type the node; ``__post_init__`` (run by :func:`marl.config.to_config`, after
    ``plugin_path`` is on ``sys.path``) imports the row and builds its config from
    ``options``, so a misspelt plugin or option fails at start, in one line.
    """

    name: str = "???"
    """``module:attr`` of an :class:`EnvRow` (or a row of :data:`ENVS`); ??? = must be set."""
    options: dict[str, Any] = field(default_factory=dict)
    """Fields of the row's config dataclass, e.g. {length: 7}; the rest keep its defaults."""

    def __post_init__(self) -> None:
        self.options = plain(self.options) if self.options is not None else {}
        if not isinstance(self.options, dict):
            raise ConfigError(f"env.options = {self.options!r} is invalid: must be a mapping")
        row = env_row(self.name)
        known = [f.name for f in dataclasses.fields(row.config)]
        unknown = sorted(set(self.options) - set(known))
        if unknown:
            raise ConfigError(f"env.options.{unknown[0]} is not a field of "
                              f"{row.config.__name__} ({self.name}): choose from {known}")
        try:
            self._config = row.config(**self.options)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"env.options of {self.name}: "
                              f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
                              ) from e
        self._row = row

    @property
    def row(self) -> EnvRow:
        """The :class:`EnvRow` that :attr:`name` names."""
        return self._row

    @property
    def config(self) -> Any:
        """The row's own config, built from :attr:`options` (what its factory receives)."""
        return self._config


def env_schema(name: str) -> type:
    """The config schema of env ``name`` for typing a stored run config: its row's
    config, or :class:`PluginEnvConfig` for a plugin (imported later, by to_config)."""
    return PluginEnvConfig if is_plugin(name) else env_row(name).config


def make_vec_env(cfg: Any, num_envs: int, seed: int | None = None) -> VecEnv:
    """Build ``num_envs`` auto-resetting copies of the env described by ``cfg``."""
    if num_envs < 1:
        raise ValueError(f"num_envs = {num_envs} is invalid: must be >= 1")
    if isinstance(cfg, PluginEnvConfig):
        return cfg.row.build(cfg.config, num_envs, seed)
    name = getattr(cfg, "name", None)
    if is_plugin(name):
        raise ConfigError(f"env.name = {name!r}: a plugin env is selected with env=plugin "
                          f"env.name={name} (its fields under env.options)")
    if name not in ENVS:
        raise ValueError(f"unknown env {name!r}: available envs are {sorted(ENVS)}")
    return ENVS[name].build(cfg, num_envs, seed)


__all__ = [
    "ENVS", "ENV_CONFIGS", "BanditEnvConfig", "BoxPushEnvConfig", "CartPoleEnvConfig",
    "ClimbingEnvConfig", "EnvRow", "EnvSpec", "JaxMarlEnvConfig", "PenaltyEnvConfig",
    "PettingZooEnvConfig", "PluginEnvConfig", "PongEnvConfig", "VecBuffers", "VecEnv",
    "check_actions", "env_row", "env_schema", "make_vec_env",
]
