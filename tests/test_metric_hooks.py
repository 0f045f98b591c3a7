"""Metric hooks (``logger.metrics: [module:attr, ...]``): called after every update with
the rollout and the learner's outputs and at every evaluation with its episodes; what
they return lands in the rows under their namespace. One file outside ``marl/`` each
(experiments/plugins/push_stats.py is the worked example)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import QUIET, ROOT, TINY, compose_config, make_trainer

from marl.envs.base import EnvSpec
from marl.io.rows import MetricEvent, call_hooks, load_hooks
from marl.schema import ConfigError

HOOK = ["plugin_path=[experiments/plugins]", "logger.metrics=[push_stats:HOOK]"]


def test_the_worked_hook_by_hand(monkeypatch):
    """Actions [T=2, B=2, N=2]: both push right (1, 1), one stays (0, 1), both stay (0, 0),
    both push up (3, 3): 2 of 4 steps are joint pushes."""
    monkeypatch.syspath_prepend(str(ROOT / "experiments" / "plugins"))
    import push_stats

    class Ro:
        actions = torch.tensor([[[1, 1], [0, 1]], [[0, 0], [3, 3]]])

    spec = EnvSpec(agents=("a", "b"), obs_shape=(1,), state_dim=1, n_actions=5)
    assert push_stats.HOOK(MetricEvent("train", 4, spec, rollout=Ro())) == {"frac": 0.5}
    out = push_stats.HOOK(MetricEvent("eval", 4, spec, {"length": np.array([2.0, 4.0])}))
    assert out == {"episode_length": 3.0}


def test_hooks_land_in_the_rows_under_their_namespace(monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    trainer = make_trainer(tmp_path / "run", [*TINY, *QUIET, *HOOK,
                                              "train.total_env_steps=120",
                                              "train.log_every_env_steps=40"])
    trainer.run()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert [r["env_steps"] for r in rows] == [40, 80, 120]
    for r in rows:
        assert 0.0 <= r["joint_push/frac"] <= 1.0
    assert rows[-1]["eval/joint_push/episode_length"] == rows[-1]["eval/length_mean"]


def test_a_hook_sees_each_update_and_its_episodes(monkeypatch, tmp_path):
    """Called once per update with that fragment's rollout, the learner's raw statistics
    and flat metrics, and the episodes that ended in it; once per evaluation."""
    seen = []
    hook = lambda e: seen.append(e) or {}  # noqa: E731
    monkeypatch.setattr("marl.train.load_hooks", lambda names: {"spy": hook})
    trainer = make_trainer(tmp_path / "run", [*TINY, *QUIET, "train.total_env_steps=200",
                                              "env.max_steps=3"])
    trainer.run()
    train = [e for e in seen if e.phase == "train"]
    assert [e.env_steps for e in train] == [40, 80, 120, 160, 200]
    assert all(e.rollout.actions.shape == (5, 8, 2) for e in train)
    assert all("loss/actor" in e.metrics and e.stats is not None for e in train)
    ended = sum(e.episodes["length"].size for e in train if "length" in e.episodes)
    # 25 steps of 8 envs, each ending an episode at least every 3 steps
    assert ended >= 8 * (25 // 3)
    (ev,) = [e for e in seen if e.phase == "eval"]
    assert ev.episodes["return"].size == 6  # train.eval_episodes


@pytest.mark.parametrize("names,words", [
    (["push_stats:NOPE"], "module 'push_stats' has no 'NOPE'"),
    (["push_stats:PUSHES"], "tuple is not callable"),
    (["push_stats:HOOK", "push_stats:HOOK"], "namespace 'joint_push' is taken"),
])
def test_a_bad_hook_is_one_line_at_start(names, words, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "experiments" / "plugins"))
    with pytest.raises(ConfigError) as e:
        load_hooks(names)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_a_hook_returning_a_non_number_is_named():
    spec = EnvSpec(agents=("a",), obs_shape=(1,), state_dim=1, n_actions=2)
    with pytest.raises(TypeError, match="metric hook 'h' returned 'x': 'many', not a number"):
        call_hooks({"h": lambda e: {"x": "many"}}, MetricEvent("eval", 0, spec))


def test_the_option_composes_and_is_recorded(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert compose_config(["+experiment=coma_boxpush", *HOOK]).logger.metrics == \
        ["push_stats:HOOK"]
