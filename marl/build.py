"""The one place that wires the parts: config -> env -> learner -> runner.

Every entry point (``marl.train``, ``marl.evaluate``, ``marl.bench``, the experiment
scripts) builds through :func:`build`, and registers the config schemas through
:func:`register_configs` (the env schemas come from :data:`marl.envs.ENV_CONFIGS`, so
:mod:`marl.config` itself imports no env).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore

from marl.algos.coma.learner import Learner, update_metrics
from marl.algos.vd.learner import QLearner, env_max_steps, q_metrics
from marl.config import Config, to_config
from marl.core.runner import Runner
from marl.envs import ENV_CONFIGS, make_vec_env
from marl.envs.base import EnvSpec, VecEnv
from marl.sweep import register_missing_plugins

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
if not CONF_DIR.is_dir():  # installed as a wheel: conf/ ships inside the package
    CONF_DIR = Path(__file__).resolve().parent / "conf"


def register_configs() -> None:
    """Register the schemas: the root config and one schema per env in group ``env``."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    for env_name, cls in ENV_CONFIGS.items():
        cs.store(group="env", name=f"{env_name}_schema", node=cls)
    register_missing_plugins()  # a sweep plugin without its extra: a line naming the extra


def compose_config(overrides: list[str]) -> Config:
    """``conf/config.yaml`` with Hydra ``overrides``, composed and validated."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return to_config(compose(config_name="config", overrides=overrides))


def build_env(cfg: Config, num_envs: int, seed: int) -> VecEnv:
    """``num_envs`` auto-resetting copies of the run's env (evaluation, video)."""
    return make_vec_env(cfg.env, num_envs, seed=seed)


def build(cfg: Config, num_envs: int, seed: int | None = None
          ) -> tuple[VecEnv, Learner | QLearner, Runner]:
    """(env of ``num_envs`` copies, learner, runner over that env), seeded with ``seed``
    (default ``cfg.seed``); the runner collects fragments of ``train.fragment_len``.
    The learner is COMA's, or the value-decomposition one when ``algo.vd`` is set."""
    seed = cfg.seed if seed is None else seed
    vd = cfg.algo.vd
    limit = env_max_steps(cfg.env)
    if vd is not None and limit is not None and limit > vd.episode_limit:
        raise ValueError(f"algo.vd.episode_limit = {vd.episode_limit} is shorter than the "
                         f"env's max_steps = {limit}: set it to at least {limit}")
    env = build_env(cfg, num_envs, seed)
    learner = Learner(env.spec, cfg.algo) if vd is None else \
        QLearner(env.spec, cfg.algo, num_envs, seed)
    runner = Runner(env, cfg.train.fragment_len, learner.policy.hidden_dim, seed=seed)
    return env, learner, runner


def metrics_fn(cfg: Config) -> Callable[[Any, EnvSpec], dict[str, float]]:
    """The metrics of :func:`build`'s learner: what its ``update`` returns, with the env
    spec -> flat ``loss/``, ``train/`` and ``credit/`` metrics."""
    return update_metrics if cfg.algo.vd is None else q_metrics
