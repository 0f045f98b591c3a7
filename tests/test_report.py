"""``python -m marl.report``: the statistics against hand-worked and brute-force
references, and the command on a small sweep tree (it writes only under --out)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from marl import report
from marl.analysis import reliable


def test_iqm_and_probability_of_improvement_by_hand():
    assert reliable.iqm(np.array([8, 1, 7, 2, 6, 3, 5, 4])) == pytest.approx(4.5)
    # pairs (1,0) > , (1,2) < , (2,0) > , (2,2) = : (1 + 0 + 1 + 0.5) / 4
    assert reliable.prob_improvement([np.array([1, 2])], [np.array([0, 2])])[0] == 0.625
    # two tasks: the mean of the per-task probabilities (1 and 0)
    p = reliable.prob_improvement([np.array([1.0]), np.array([0.0])],
                                  [np.array([0.0]), np.array([1.0])])
    assert p[0] == 0.5


def test_the_bootstrap_is_stratified():
    """Task A scores 0 and task B 1 on every seed: a stratified resample always holds
    three of each, so the pooled mean is 0.5 in every draw; a pooled bootstrap is not."""
    point, low, high = reliable.stratified_ci([np.zeros(3), np.ones(3)], reliable.mean)
    assert point == low == high == 0.5


def test_one_task_matches_scipys_percentile_bootstrap():
    x = np.array([0.61, 0.72, 0.80, 0.84, 0.90, 0.93])
    _, low, high = reliable.stratified_ci([x], reliable.mean, n=20000)
    ref = stats.bootstrap((x,), np.mean, n_resamples=20000, method="percentile",
                          random_state=1).confidence_interval
    assert low == pytest.approx(ref.low, abs=0.01) and high == pytest.approx(ref.high, abs=0.01)


def test_the_row_wise_statistics_give_the_per_row_numbers():
    """mean and iqm are bootstrapped row-wise at once; a wrapper (not in the table) takes
    the slow path of one call per resample: the same intervals, to the bit."""
    rng = np.random.default_rng(3)
    for k in range(10):
        strata = [rng.normal(size=int(rng.integers(2, 12))) for _ in range(int(rng.integers(1, 3)))]
        for statistic in (reliable.mean, reliable.iqm):
            fast = reliable.stratified_ci(strata, statistic, n=300, seed=k)
            slow = reliable.stratified_ci(strata, lambda v, f=statistic: f(v), n=300, seed=k)
            assert fast == slow


def test_curve_bands_stay_in_the_metrics_range():
    values = np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 1.0]])  # 3 seeds, 2 evaluations
    mid, low, high = reliable.curve_band(values, (0.0, 1.0))
    assert mid[0] == pytest.approx(1 / 3) and low[0] >= 0.0 and high[1] <= 1.0
    # the t-interval a mean +- CI band would draw reaches below 0 here
    assert mid[0] - stats.t.ppf(0.975, 2) * values[:, 0].std(ddof=1) / np.sqrt(3) < 0


def _run(root: Path, name: str, lr: float, seed: int, success: float | None) -> None:
    d = root / f"{name}_lr{lr}_s{seed}"
    (d / ".hydra").mkdir(parents=True)
    cfg = {"name": name, "seed": seed, "algo": {"name": "coma", "actor_lr": lr},
           "logger": {"backends": ["csv"]}, "hydra": {"run": {"dir": str(d)}}}
    (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    rows = [{"env_steps": s, "eval/success_rate": min(1.0, success or 0.0) * s / 200}
            for s in (100, 200)]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if success is not None:
        (d / "summary.json").write_text(json.dumps({"env_steps": 200,
                                                    "eval/success_rate": success}))


def _tree_hash(root: Path, skip: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and skip not in p.parents:
            h.update(str(p).encode() + p.read_bytes())
    return h.hexdigest()


def test_a_sweep_report_writes_only_under_out(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    for seed, (a, b) in enumerate([(0.9, 0.5), (0.8, 0.6), (1.0, 0.4)]):
        _run(sweep, "box", 0.001, seed, a)
        _run(sweep, "box", 0.01, seed, b)
    _run(sweep, "box", 0.01, 3, None)  # unfinished: listed, not counted
    out = tmp_path / "out"
    before = _tree_hash(tmp_path, out)
    assert report.main([str(sweep), "--out", str(out)]) == 0
    assert _tree_hash(tmp_path, out) == before
    assert sorted(p.name for p in out.iterdir()) == ["curves_eval_success_rate.png",
                                                     "report.json", "report.md"]
    data = json.loads((out / "report.json").read_text())
    rows = data["tables"]["eval/success_rate"]["rows"]
    assert set(rows) == {"box [algo.actor_lr=0.001]", "box [algo.actor_lr=0.01]"}
    assert rows["box [algo.actor_lr=0.001]"]["mean"][0] == pytest.approx(0.9)
    assert rows["box [algo.actor_lr=0.01]"]["n"] == 3
    poi = data["tables"]["eval/success_rate"]["prob_improvement"]
    assert poi == {"box [algo.actor_lr=0.001] > box [algo.actor_lr=0.01]": [1.0, 1.0, 1.0]}
    assert any("_s3" in d for d in data["unfinished"])
    assert "IQM" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["empty", "in_package", "in_input", "unfinished"])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, case):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    out = tmp_path / "out"
    if case == "in_package":
        out = Path(report.__file__).parent / "report_out"
    if case in ("in_package", "in_input", "unfinished"):
        _run(sweep, "box", 0.01, 0, None if case == "unfinished" else 0.5)
    if case == "in_input":
        out = sweep / "report"
    assert report.main([str(sweep), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert not out.exists()
