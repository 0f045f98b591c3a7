"""Episode statistics -> metrics, including the credit diagnostics."""

from __future__ import annotations

import numpy as np
import pytest

from marl.envs.base import EnvSpec
from marl.envs.boxpush import credit_metrics
from marl.io.metrics import summarise_episodes

SPEC = EnvSpec(agents=("robot_0", "robot_1"), obs_shape=(3,), state_dim=2, n_actions=5,
               success_metric="success", credit_metrics=credit_metrics)


def test_push_shares_sum_to_one_and_idle_rates():
    stats = {
        "return": np.array([1.0, 0.0]), "length": np.array([10.0, 30.0]),
        "success": np.array([1.0, 0.0]),
        "pushes/robot_0": np.array([3.0, 0.0]), "pushes/robot_1": np.array([1.0, 0.0]),
        "push_attempts/robot_0": np.array([4.0, 2.0]),
        "push_attempts/robot_1": np.array([2.0, 0.0]),
        "idle/robot_0": np.array([0.0, 10.0]), "idle/robot_1": np.array([8.0, 30.0]),
    }
    m = credit_metrics(stats, SPEC.agents)
    assert m["robot_0/push_share"] == pytest.approx(0.75)
    assert m["robot_0/push_share"] + m["robot_1/push_share"] == pytest.approx(1.0)
    assert m["robot_0/push_attempt_share"] == pytest.approx(0.75)
    assert m["robot_0/idle_rate"] == pytest.approx(10 / 40)
    assert m["robot_1/idle_rate"] == pytest.approx(38 / 40)
    rows = summarise_episodes("train", stats, SPEC)
    assert rows["train/success_rate"] == 0.5
    assert rows["credit/robot_1/push_share"] == pytest.approx(0.25)
    assert summarise_episodes("eval", stats, SPEC)["eval/credit/robot_0/idle_rate"] == 0.25


def test_no_pushes_means_no_push_share():
    stats = {"return": np.zeros(2), "length": np.full(2, 50.0),
             "pushes/robot_0": np.zeros(2), "pushes/robot_1": np.zeros(2)}
    assert "robot_0/push_share" not in credit_metrics(stats, SPEC.agents)


def test_no_episodes_no_rows():
    assert summarise_episodes("train", {}, SPEC) == {}


def test_success_metric_also_reported_under_its_own_name():
    """SMAX's success metric is ``win``: train/win_rate and train/success_rate both exist."""
    spec = EnvSpec(agents=("ally_0", "ally_1"), obs_shape=(3,), state_dim=2, n_actions=5,
                   success_metric="win")
    stats = {"return": np.array([1.0, 0.0, 1.0, 1.0]), "length": np.array([5, 9, 6, 7]),
             "win": np.array([1.0, 0.0, 1.0, 1.0])}
    out = summarise_episodes("eval", stats, spec)
    assert out["eval/win_rate"] == out["eval/success_rate"] == 0.75
    assert "eval/win_mean" not in out
    boxpush = summarise_episodes("eval", {**stats, "success": stats.pop("win")}, SPEC)
    assert "eval/success_rate" in boxpush and "eval/success_success_rate" not in boxpush
