"""Every experiment says which reward its agents are trained on (``algo.team_reward``)."""

from __future__ import annotations

import pytest
import yaml
from conftest import compose_config

from marl.build import CONF_DIR

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


def _states_team_reward(name: str) -> bool:
    """The experiment file, or the experiment it extends, sets algo.team_reward."""
    doc = yaml.safe_load((CONF_DIR / "experiment" / f"{name}.yaml").read_text()) or {}
    if "team_reward" in (doc.get("algo") or {}):
        return True
    bases = [d for d in doc.get("defaults", []) if isinstance(d, str) and d != "_self_"]
    return any(_states_team_reward(b) for b in bases)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_states_its_team_reward(name):
    assert _states_team_reward(name), f"conf/experiment/{name}.yaml: add algo.team_reward"


def test_off_in_yaml_is_the_string_not_a_boolean():
    """YAML 1.1 reads a bare ``off`` as False: the experiment files quote it."""
    cfg = compose_config(["+experiment=coma_spread"])
    assert cfg.algo.team_reward == "off"
    cfg = compose_config(["+experiment=coma_spread", "algo.team_reward=mean"])
    assert cfg.algo.team_reward == "mean"
