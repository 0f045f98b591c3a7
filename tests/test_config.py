"""Every YAML composes into its dataclass; bad keys, types and ranges fail with their name."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import compose
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf.errors import ConfigKeyError, ValidationError

from marl.build import CONF_DIR
from marl.config import Config, ConfigError, to_config

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
ENVS = sorted(p.stem for p in (CONF_DIR / "env").glob("*.yaml"))
ALGOS = sorted(p.stem for p in (CONF_DIR / "algo").glob("*.yaml"))


compose_cfg = compose


def test_config_dir_is_found_and_complete():
    assert Path(CONF_DIR, "config.yaml").is_file()
    assert "coma_boxpush" in EXPERIMENTS
    assert {"coma_boxpush_light", "coma_boxpush_strict"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_into_the_dataclasses(name):
    dcfg = compose_cfg([f"+experiment={name}"])
    needed = [f"{k}=/some/run" for k in dcfg.requires]  # keys the command line must set
    if needed:
        with pytest.raises(ConfigError, match="needs it"):
            to_config(dcfg)
        dcfg = compose_cfg([f"+experiment={name}", *needed])
    cfg = to_config(dcfg)
    assert isinstance(cfg, Config)
    assert cfg.name == name


@pytest.mark.parametrize("env", ENVS)
def test_every_env_yaml_composes(env):
    cfg = to_config(compose_cfg([f"env={env}"]))
    assert type(cfg.env).__name__.endswith("EnvConfig")


@pytest.mark.parametrize("algo", ALGOS)
def test_every_algo_yaml_composes(algo):
    cfg = to_config(compose_cfg([f"algo={algo}"]))
    assert cfg.algo.name


def test_boxpush_experiments_set_what_the_issue_asks():
    base = to_config(compose_cfg(["+experiment=coma_boxpush"]))
    assert (base.env.width, base.env.height, base.env.box_weight, base.env.solo_push_prob) == \
        (5, 5, 2, 0.5)
    assert to_config(compose_cfg(["+experiment=coma_boxpush_light"])).env.box_weight == 1
    assert to_config(compose_cfg(["+experiment=coma_boxpush_strict"])).env.solo_push_prob == 0


def test_misspelt_key_fails_naming_it():
    with pytest.raises(ConfigCompositionException) as e:
        compose_cfg(["+experiment=coma_boxpush", "env.widht=6"])
    assert "widht" in str(e.value.__cause__) or "widht" in str(e.value)


def test_misspelt_top_level_key_fails():
    with pytest.raises(ConfigCompositionException, match="sed"):
        compose_cfg(["sed=3"])


def test_wrong_type_fails_naming_the_key():
    with pytest.raises(ConfigCompositionException) as e:
        compose_cfg(["train.num_envs=lots"])
    cause = e.value.__cause__
    assert isinstance(cause, (ValidationError, ConfigKeyError))
    assert "num_envs" in str(cause)


@pytest.mark.parametrize(
    "override,field",
    [
        ("algo.actor_lr=0", "algo.actor_lr"),
        ("algo.critic_lr=-1e-3", "algo.critic_lr"),
        ("algo.td_lambda=1.5", "algo.td_lambda"),
        ("algo.gamma=0", "algo.gamma"),
        ("algo.gamma=1.01", "algo.gamma"),
        ("algo.advantage=nope", "algo.advantage"),
        ("algo.optimizer=sgd", "algo.optimizer"),
        ("train.num_envs=0", "train.num_envs"),
        ("train.fragment_len=0", "train.fragment_len"),
        ("env.width=2", "env.width"),
        ("env.box_weight=3", "env.box_weight"),
        ("env.solo_push_prob=1.5", "env.solo_push_prob"),
        ("env.hole=[7,0]", "env.hole"),
        ("logger.wandb.mode=sometimes", "logger.wandb.mode"),
    ],
)
def test_out_of_range_values_fail_with_the_field_name(override, field):
    dcfg = compose_cfg(["+experiment=coma_boxpush", override])
    with pytest.raises(ConfigError) as e:
        to_config(dcfg)
    msg = str(e.value)
    assert msg.startswith(field), msg
    assert "is invalid" in msg


def test_unknown_experiment_lists_the_available_ones():
    with pytest.raises(MissingConfigException) as e:
        compose_cfg(["+experiment=coma_boxpsh"])
    for name in EXPERIMENTS:
        assert name in str(e.value)


@pytest.mark.parametrize("group,options", [("env", ENVS), ("algo", ALGOS)])
def test_unknown_group_option_lists_the_available_ones(group, options):
    with pytest.raises(MissingConfigException) as e:
        compose_cfg([f"{group}=nope"])
    for name in options:
        assert name in str(e.value)
