"""Learning tests: the algorithm actually learns small tasks (marked slow; run in CI)."""

from __future__ import annotations

import json

import pytest
from conftest import train_quietly

train = train_quietly


@pytest.mark.slow
def test_coma_solves_small_light_box(tmp_path):
    """4x4 grid, light box: COMA reaches >= 90% greedy success (about 25 s here)."""
    summary = train(tmp_path, [
        "+experiment=coma_boxpush", "env.width=4", "env.height=4", "env.box_weight=1",
        "env.max_steps=25", "algo.eps_anneal_steps=100000", "train.total_env_steps=800000",
        "train.eval_every_env_steps=0", "train.eval_episodes=200", "seed=0"])
    assert summary["eval/episodes"] == 200
    assert summary["eval/success_rate"] >= 0.9, json.dumps(summary)
    # solved quickly, not by luck at the time limit
    assert summary["eval/length_mean"] < 12
