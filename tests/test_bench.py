"""``python -m marl.bench`` prints what it measured: on a fake clock that advances only
when the env steps (1 ms per batched step) and the learner updates (5 ms per update),
every printed figure is known exactly."""

from __future__ import annotations

import json

import pytest

import marl.build
from marl import bench
from marl.algos.coma.learner import Learner

STEP_S, UPDATE_S = 1e-3, 5e-3


@pytest.fixture
def fake_clock(monkeypatch):
    clock = [0.0]
    make = marl.build.make_vec_env

    def counting_env(*args, **kwargs):
        env = make(*args, **kwargs)
        step = env.step

        def timed_step(actions):
            clock[0] += STEP_S
            return step(actions)

        env.step = timed_step
        return env

    update = Learner.update

    def timed_update(self, ro):
        clock[0] += UPDATE_S
        return update(self, ro)

    monkeypatch.setattr(marl.build, "make_vec_env", counting_env)
    monkeypatch.setattr(Learner, "update", timed_update)
    monkeypatch.setattr(bench.time, "perf_counter", lambda: clock[0])
    return clock


def test_bench_prints_exactly_what_it_measured(fake_clock, capsys):
    bench.main(["--raw-envs", "8", "--seconds", "0.2", "--envs", "boxpush", "--envs-batch",
                "4", "--json", "train.num_envs=4", "train.fragment_len=5"])
    out = capsys.readouterr().out
    results = json.loads(out.strip().splitlines()[-1])
    # B env steps per 1 ms batched step
    assert results["raw_env_steps_per_s"] == pytest.approx(8 / STEP_S)
    assert results["collect_steps_per_s"] == pytest.approx(4 / STEP_S)
    # one fragment: B * T steps in T * 1 ms of acting and 5 ms of learning
    assert results["update_steps_per_s"] == pytest.approx(4 * 5 / UPDATE_S)
    assert results["train_steps_per_s"] == pytest.approx(4 * 5 / (5 * STEP_S + UPDATE_S))
    assert results["collect_frac"] == pytest.approx(0.5)
    assert results["env/boxpush"] == pytest.approx(4 / STEP_S)
    assert "raw env (coma_boxpush, B=8, random actions): 8,000 env steps/s" in out
    assert "2,000 env steps/s (acting 4,000/s, learning 4,000/s, acting share 50%)" in out
    (row,) = [ln for ln in out.splitlines() if ln.startswith("| boxpush ")]
    assert row.endswith("|       4,000 |"), row


@pytest.mark.parametrize("argv", [["--raw-envs", "0"], ["--seconds", "-1"],
                                  ["--envs-batch", "0"], ["--pixel-seconds", "0"]])
def test_a_count_or_time_below_1_is_refused_in_one_line(argv, capsys):
    """Was a traceback from the env builder (``--raw-envs 0``) or a loop that never ran."""
    with pytest.raises(SystemExit) as e:
        bench.parse_args(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith(f"argument {argv[0]}: {argv[1]!r} must be above 0"), err
