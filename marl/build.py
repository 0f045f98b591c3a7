"""The one place that wires the parts: config -> env -> learner -> runner.

Every entry point (``marl.train``, ``marl.evaluate``, ``marl.bench``, the experiment
scripts) builds through :func:`build`, and registers the config schemas through
:func:`register_configs` (the env schemas come from the rows of :data:`marl.envs.ENVS`, so
:mod:`marl.config` itself imports no env).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from marl.algos import Learner, learner_family
from marl.algos.rewards import with_reward_metrics, with_reward_transform
from marl.cli import register_help_resolver
from marl.config import Config, ConfigError, family_of, rewrite_deprecated, to_config
from marl.core.device import resolve_device
from marl.core.runner import Runner
from marl.envs import ENVS, PluginEnvConfig, make_vec_env
from marl.envs.base import EnvSpec, VecEnv
from marl.io.rundir import register_stamp_resolver
from marl.sweep import register_missing_plugins

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
if not CONF_DIR.is_dir():  # installed as a wheel: conf/ ships inside the package
    CONF_DIR = Path(__file__).resolve().parent / "conf"


def register_configs() -> None:
    """Register the schemas: the root config, and in group ``env`` one ``<name>_schema``
    per row of :data:`marl.envs.ENVS`, and ``plugin`` (``env=plugin env.name=<module>:
    <attr>``, a native env of the user's code; also as ``plugin_schema`` for a YAML file)."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    schemas = {**{name: row.config for name, row in ENVS.items()}, "plugin": PluginEnvConfig}
    for env_name, cls in schemas.items():
        cs.store(group="env", name=f"{env_name}_schema", node=open_mappings(cls))
    cs.store(group="env", name="plugin", node=open_mappings(PluginEnvConfig))
    register_missing_plugins()  # a sweep plugin without its extra: a line naming the extra
    register_stamp_resolver()  # ${marl_stamp:...} in the run-directory names
    register_help_resolver()  # ${marl_config_groups:} in --help, without the schemas


def open_mappings(cls: type) -> Any:
    """The schema of ``cls`` with its mapping fields (``dict[str, ...]``, such as
    ``env.kwargs``) open: ``'env.kwargs={N: 3}'`` or ``env.kwargs.N=3`` may add keys the
    YAML does not list, where Hydra's struct mode would refuse them."""
    node, hints = OmegaConf.structured(cls), typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if typing.get_origin(hints.get(f.name)) is dict:
            OmegaConf.set_struct(node[f.name], False)
    return node


def compose_config(overrides: list[str]) -> Config:
    """``conf/config.yaml`` with Hydra ``overrides``, composed and validated."""
    register_configs()
    overrides = rewrite_deprecated(overrides)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        try:
            composed = compose(config_name="config", overrides=overrides)
        except Exception as e:  # Hydra's multi-line errors -> one line naming the key
            raise ConfigError(hydra_error_line(e)) from e
        return to_config(composed, overrides)


def hydra_error_line(e: BaseException) -> str:
    """One line for a Hydra composition error: the key it could not set and why."""
    cause = e
    while cause.__cause__ is not None:
        cause = cause.__cause__
    key = getattr(cause, "full_key", None)
    if key and "not in struct" in str(cause):
        owner = family_of(key.split(".")[1]) if key.startswith("algo.") else None
        if owner:
            return (f"{key} belongs to the {owner!r} learner family, not to this run's "
                    f"algo: drop it (or pick an algo of that family)")
        return (f"{key} is not a config key: check its spelling (or, for an open mapping "
                f"such as env.kwargs, add it with +{key}=...)")
    text = " ".join(str(e).split())
    return text if len(text) < 300 else text[:297] + "..."


def build_env(cfg: Config, num_envs: int, seed: int) -> VecEnv:
    """``num_envs`` auto-resetting copies of the run's env (evaluation, video)."""
    return make_vec_env(cfg.env, num_envs, seed=seed)


def build(cfg: Config, num_envs: int, seed: int | None = None
          ) -> tuple[VecEnv, Learner, Runner]:
    """(env of ``num_envs`` copies, learner, runner over that env), seeded with ``seed``
    (default ``cfg.seed``); the runner collects fragments of ``train.fragment_len``.
    The learner is the row of :data:`marl.algos.LEARNERS` that ``algo.learner`` names,
    constructed on the run's ``device`` (:mod:`marl.core.device`)."""
    seed = cfg.seed if seed is None else seed
    family = learner_family(cfg.algo.learner)
    env = build_env(cfg, num_envs, seed)
    try:
        check_episode_limit(cfg, env.spec, family.episode_limit(cfg.algo))
        with torch.device(resolve_device(cfg.device)):  # parameters, buffers, optimisers
            learner = family.learner(env.spec, cfg.algo, num_envs, seed)
        learner = with_reward_transform(learner, env.spec, cfg.algo, seed)  # none: as it is
    except BaseException:
        env.close()
        raise
    runner = Runner(env, cfg.train.fragment_len, learner.policy.hidden_dim, seed=seed)
    return env, learner, runner


def check_episode_limit(cfg: Config, spec: EnvSpec, limit: int | None) -> None:
    """Refuse (one line) a learner whose longest storable episode is shorter than the
    env's (``EnvSpec.episode_limit``)."""
    if limit is None or spec.episode_limit is None or spec.episode_limit <= limit:
        return
    raise ConfigError(f"algo.vd.episode_limit = {limit} is shorter than the env's episodes "
                      f"(env {cfg.env.name}: up to {spec.episode_limit} steps): set "
                      f"algo.vd.episode_limit={spec.episode_limit}")


def metrics_fn(cfg: Config) -> Callable[[Any, EnvSpec], dict[str, float]]:
    """The metrics of :func:`build`'s learner: what its ``update`` returns, with the env
    spec -> flat ``loss/``, ``train/`` and ``credit/`` metrics."""
    return with_reward_metrics(learner_family(cfg.algo.learner).metrics, cfg.algo)
