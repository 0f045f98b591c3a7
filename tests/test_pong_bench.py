"""``python -m marl.bench --pong``: the Pong experiments' training loops in one table, on
the fake clock of ``test_bench`` (1 ms per batched env step, 5 ms per update)."""

from __future__ import annotations

import json

import pytest
from test_bench import STEP_S, UPDATE_S, fake_clock  # noqa: F401 - the fixture

from marl import bench


def test_pong_section_prints_each_experiment(fake_clock, capsys):  # noqa: F811
    bench.main(["--pong", "ppo_pong,coma_pong", "--seconds", "0.05", "--json",
                "train.num_envs=2", "train.fragment_len=4"])
    out = capsys.readouterr().out
    results = json.loads(out.strip().splitlines()[-1])
    # one fragment: B * T = 8 steps in T = 4 batched steps of 1 ms and one 5 ms update
    expect = 2 * 4 / (4 * STEP_S + UPDATE_S)
    for name in ("ppo_pong", "coma_pong"):
        assert results[f"pong/{name}/train_steps_per_s"] == pytest.approx(expect)
        assert results[f"pong/{name}/collect_frac"] == pytest.approx(4 / 9)
        assert results[f"pong/{name}/cpu_steps_per_s"] > 0
        (row,) = [ln for ln in out.splitlines() if ln.startswith(f"| {name} ")]
        assert "| 2 x 4     |" in row and "|         889 |    44% |      56% |" in row, row
    assert "raw env" not in out  # --pong replaces the default experiment benchmarks
