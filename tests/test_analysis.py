"""marl.analysis: the tables' bootstrap intervals against an exact enumeration of every
resample (and, with 3 seeds or fewer, by hand: the interval is the seeds' range), a tiny
fake sweep aggregated to the known answer, a torn metrics.jsonl line tolerated, every
committed results.json re-aggregated to its committed table, and the pages' hand-placed
cells checked against those records."""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from marl.analysis import curves, reliable, report, runs, tables

ROOT = Path(__file__).resolve().parent.parent


def fake_run(d: Path, name: str, algo: str, seed: int, curve: list[tuple[int, float]],
             final: tuple[float, float] | None, shares: tuple[float, float] = (0.5, 0.5)):
    """A run directory: config, metrics.jsonl with train rows and the eval ``curve``, and
    with ``final`` (success, return) a summary.json."""
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump(
        {"name": name, "seed": seed, "algo": {"name": algo, "advantage": algo}}))
    rows = [{"env_steps": s, "train/return": 0.0} for s in range(0, 3_000_001, 500_000)]
    rows += [{"env_steps": s, "eval/success_rate": v, "eval/return_mean": v} for s, v in curve]
    rows.sort(key=lambda r: r["env_steps"])
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if final is not None:
        (d / "summary.json").write_text(json.dumps({
            "env_steps": curve[-1][0], "eval/success_rate": final[0], "eval/return_mean": final[1],
            "eval/credit/robot_0/push_share": shares[0],
            "eval/credit/robot_1/push_share": shares[1], "name": name, "algo": algo,
            "seed": seed}))


# ------------------------------------------------------------------------ stats
def exact(xs: list[float], ys: list[float] | None = None) -> np.ndarray:
    """The exact bootstrap distribution of the mean (or of mean(xs) - mean(ys)): every one
    of the equally likely resamples, enumerated (a slow reference, no random draws)."""
    def means(v):
        return np.array([np.mean(c) for c in itertools.product(v, repeat=len(v))])
    mx = means(xs)
    return mx if ys is None else (mx[:, None] - means(ys)[None, :]).ravel()


def bounds(cell: str) -> tuple[float, float]:
    low, high = re.search(r"\[([^,]+), ([^\]]+)\]", cell).groups()
    return float(low.rstrip("M")), float(high.rstrip("M"))


def test_mean_ci_is_marl_reports_interval_and_the_exact_bootstrap():
    x = [0.955, 0.985, 0.990, 1.000, 0.995]
    got = reliable.mean_ci(x)
    assert got == reliable.stratified_ci([np.array(x)], reliable.mean)  # what marl.report gives
    ref = exact(x)  # 5^5 resamples
    assert got[0] == pytest.approx(0.985)
    assert got[1] == pytest.approx(np.percentile(ref, 2.5), abs=0.002)
    assert got[2] == pytest.approx(np.percentile(ref, 97.5), abs=0.002)
    assert reliable.iqm_ci(x) == reliable.stratified_ci([np.array(x)], reliable.iqm)
    assert reliable.fmt_ci(got) == f"0.985 [{got[1]:.3f}, {got[2]:.3f}]"
    # 3 seeds or fewer: each seed alone is >= 1/27 > 2.5% likely, so the percentile
    # interval is exactly the seeds' range (why few-seed bootstrap CIs are narrow)
    assert reliable.mean_ci([0.1, 0.3, 0.2]) == pytest.approx((0.2, 0.1, 0.3))
    m, low, high = reliable.mean_ci([0.7])
    assert m == 0.7 and math.isnan(low) and reliable.fmt_ci((m, low, high)) == "0.700"
    assert reliable.fmt_ci(reliable.mean_ci([])) == "n/a"


def test_difference_ci_against_the_exact_bootstrap_and_scipy():
    from scipy import stats as sps

    x, y = [0.9, 0.91, 0.92], [0.1, 0.11, 0.12]
    d, low, high = reliable.difference_ci(x, y)
    ref = exact(x, y)  # 27 x 27 resample pairs
    assert d == pytest.approx(0.8)
    assert low == pytest.approx(np.percentile(ref, 2.5), abs=0.002)
    assert high == pytest.approx(np.percentile(ref, 97.5), abs=0.002)
    a = np.array([0.61, 0.72, 0.80, 0.84, 0.90, 0.93])
    b = np.array([0.55, 0.60, 0.70, 0.71, 0.79])
    _, low, high = reliable.difference_ci(a, b, n=20000)
    sci = sps.bootstrap((a, b), lambda u, v, axis: u.mean(axis) - v.mean(axis), paired=False,
                        n_resamples=20000, method="percentile", random_state=1)
    assert low == pytest.approx(sci.confidence_interval.low, abs=0.01)
    assert high == pytest.approx(sci.confidence_interval.high, abs=0.01)
    assert reliable.difference_ci([0.5], [0.1, 0.2]) is None
    assert reliable.difference_ci([0.5, 0.5], [0.2, 0.2]) == (pytest.approx(0.3),) * 3


def test_versus_rows_are_whatever_algorithms_the_runs_hold():
    recs = {"coma": [{"success": x} for x in (0.9, 0.91, 0.92)],
            "iac_v": [{"success": x} for x in (0.1, 0.11, 0.12)],
            "my_new_coma": [{"success": x} for x in (0.5, 1.0)],
            "central_v": [{"success": 0.3}]}
    rows = {r["COMA vs"]: r for r in tables.versus(recs)}
    assert list(rows) == ["central_v", "iac_v", "my_new_coma"]
    assert rows["iac_v"]["reading"] == "COMA ahead"
    cell = rows["iac_v"]["final win rate, COMA minus other"]
    assert cell.startswith("+0.800 [")
    ref = exact([0.9, 0.91, 0.92], [0.1, 0.11, 0.12])
    assert bounds(cell) == (pytest.approx(np.percentile(ref, 2.5), abs=0.002),
                            pytest.approx(np.percentile(ref, 97.5), abs=0.002))
    assert rows["iac_v"]["P(COMA > other)"] == "1.00 [1.00, 1.00]"
    assert rows["my_new_coma"]["reading"] == "no difference shown (CI contains 0)"
    assert rows["central_v"]["reading"].startswith("too few seeds")
    other = tables.versus(recs, ref="iac_v")
    assert {r["iac_v vs"] for r in other} == {"coma", "central_v", "my_new_coma"}
    assert next(r for r in other if r["iac_v vs"] == "coma")["reading"] == "coma ahead"


# ------------------------------------------------------------------------ runs
def test_a_torn_last_line_is_skipped(tmp_path):
    d = tmp_path / "run"
    fake_run(d, "exp", "coma", 0, [(1_000_000, 0.5), (2_000_000, 0.95)], None)
    with (d / "metrics.jsonl").open("a") as f:
        f.write('\n{"env_steps": 2500000, "eval/success_ra')  # a writer killed mid-line
    rows = runs.read_jsonl(d / "metrics.jsonl")
    assert rows[-1]["env_steps"] == 3_000_000 and len(rows) == 9
    rec = runs.read_run(d, 0.9)
    assert rec["curve"] == [(1_000_000, 0.5, 0.5), (2_000_000, 0.95, 0.95)]
    assert rec["steps_to_threshold"] == 2_000_000 and rec["finished"] is False
    assert runs.eval_curve(d / "metrics.jsonl", "eval/success_rate") == (
        [1_000_000, 2_000_000], [0.5, 0.95])


def test_a_missing_sweep_directory_is_refused(tmp_path):
    with pytest.raises(ValueError, match="sweep directory .*nope does not exist"):
        runs.find_runs([tmp_path / "nope"], 0.9)


def test_aggregate_on_synthetic_sweep_gives_the_known_answer(tmp_path):
    sweep = tmp_path / "sweep"
    # algo "good": success 1.0 / 0.8 / 0.9 at the end; crosses 0.9 at 1M, never, 2M
    fake_run(sweep / "0_good_s0", "exp", "good", 0, [(1_000_000, 0.95), (3_000_000, 1.0)],
             (1.0, 0.9), shares=(0.4, 0.6))
    fake_run(sweep / "1_good_s1", "exp", "good", 1, [(1_000_000, 0.5), (3_000_000, 0.8)],
             (0.8, 0.7), shares=(0.5, 0.5))
    fake_run(sweep / "2_good_s2", "exp", "good", 2, [(1_000_000, 0.2), (2_000_000, 0.9),
                                                     (3_000_000, 0.9)], (0.9, 0.8),
             shares=(0.7, 0.3))
    # algo "bad": two finished seeds that never reach 0.9, one unfinished run
    fake_run(sweep / "3_bad_s0", "exp", "bad", 0, [(3_000_000, 0.1)], (0.1, 0.0))
    fake_run(sweep / "4_bad_s1", "exp", "bad", 1, [(3_000_000, 0.3)], (0.3, 0.2))
    fake_run(sweep / "5_bad_s2", "exp", "bad", 2, [(1_000_000, 0.95)], None)
    out = tmp_path / "out"
    result = report.aggregate([sweep], out, threshold=0.9)
    rows = {r["algorithm"]: r for r in result["tables"]["exp"]}
    good, bad = rows["good"], rows["bad"]
    assert good["seeds"] == "3" and bad["seeds"] == "2"
    # 3 seeds or fewer: the bootstrap's 95% interval is the seeds' range (see above);
    # the IQM of 3 scores trims none of them: the mean
    assert good["final success"] == "0.900 [0.800, 1.000]"
    assert good["final success, IQM"] == "0.900 [0.800, 1.000]"
    assert good["final return"] == "0.800 [0.700, 0.900]"
    assert good["env steps to 90% success"] == "1.50M [1.00M, 2.00M] (2/3)"
    # lazier robot: 0.4, 0.5, 0.3
    assert good["lazier robot's push share"] == "0.40 [0.30, 0.50]"
    assert bad["final success"] == "0.200 [0.100, 0.300]"
    assert bad["env steps to 90% success"] == "not reached (0/2)"
    md = (out / "results.md").read_text()
    assert "| good | 3 | 0.900 [0.800, 1.000] |" in md and "5_bad_s2" in md  # unfinished listed
    assert "95% stratified bootstrap CI over the row's N seeds" in md
    assert (out / "curves_exp.png").read_bytes()[:4] == b"\x89PNG"
    assert len(json.loads((out / "results.json").read_text())["runs"]) == 6


def test_versus_aggregate_merges_previous_results_and_a_new_run_replaces_its_record(tmp_path):
    first = tmp_path / "first"
    fake_run(first / "coma_s0", "coma_smax_3m", "coma", 0, [(1_000_000, 0.5), (2_000_000, 0.6)],
             (0.6, 1.0))
    fake_run(first / "coma_s1", "coma_smax_3m", "coma", 1, [(2_000_000, 0.7)], (0.7, 1.2))
    out1 = tmp_path / "out1"
    report.aggregate_versus([first], out1, 0.8)
    # the first runs' directories are gone; seed 1 is run again, seed 2 is new
    second = tmp_path / "second"
    fake_run(second / "coma_s1", "coma_smax_3m", "coma", 1, [(2_000_000, 0.9)], (0.9, 1.5))
    fake_run(second / "coma_s2", "coma_smax_3m", "coma", 2, [(2_000_000, 0.8)], (0.8, 1.4))
    out2 = tmp_path / "out2"
    report.aggregate_versus([second], out2, 0.8, out1 / "results.json")
    saved = json.loads((out2 / "results.json").read_text())
    by_seed = {r["seed"]: r for r in saved["runs"]}
    assert sorted(by_seed) == [0, 1, 2]
    assert by_seed[1]["success"] == 0.9 and "merged_from" not in by_seed[1]  # the new run
    assert by_seed[0]["merged_from"] and by_seed[0]["curve"] == [[1_000_000, 0.5, 0.5],
                                                                 [2_000_000, 0.6, 0.6]]
    row = saved["tables"]["coma_smax_3m"]["algorithms"][0]
    # 0.6, 0.9, 0.8: mean 0.767, interval the range
    assert row["seeds"] == "3" and row["final success"] == "0.767 [0.600, 0.900]"
    assert "lazier robot's push share" not in row
    assert "1 of them merged" in (out2 / "results.md").read_text()
    with pytest.raises(ValueError, match="threshold"):
        report.aggregate_versus([], tmp_path / "out3", 0.9, out1 / "results.json")


# ------------------------------------------------- the committed results files
COMMITTED = [(p, json.loads(p.read_text())) for p in sorted(
    (ROOT / "experiments").rglob("results.json")) if "threshold" in p.read_text()[:200]]


@pytest.mark.parametrize(("path", "data"), COMMITTED,
                         ids=[str(p.relative_to(ROOT)) for p, _ in COMMITTED])
def test_committed_results_reaggregate_to_their_committed_tables(tmp_path, path, data):
    """Each aggregated results.json, merged alone with --previous, gives the tables
    stored beside it, and results.md's table lines are those of the committed file."""
    versus = isinstance(next(iter(data["tables"].values())), dict)
    write = report.aggregate_versus if versus else report.aggregate
    out = tmp_path / "out"
    result = write([], out, data["threshold"], path)
    assert result["tables"] == data["tables"]
    def table_lines(p: Path) -> list[str]:
        return [ln for ln in p.read_text().splitlines() if ln.startswith("|")]
    assert table_lines(out / "results.md") == table_lines(path.parent / "results.md")


def test_there_are_committed_results_to_check():
    names = {str(p.relative_to(ROOT / "experiments")) for p, _ in COMMITTED}
    assert {"credit_assignment/results.json", "smax/ablation/results.json"} <= names


# ----------------------------------------------------------------------- curves
def test_band_is_mean_and_bootstrap_band_per_step():
    steps, m, low, high = curves.band([[(1, 0.2), (2, 0.4)], [(1, 0.4), (2, None)]])
    assert steps == [1, 2] and m == pytest.approx([0.3, 0.4])
    # two runs at step 1: the band is their range; one run at step 2: a point
    assert low == pytest.approx([0.2, 0.4]) and high == pytest.approx([0.4, 0.4])
    _, _, low, high = curves.band([[(1, -0.5)], [(1, 0.5)]], (0.0, 1.0))
    assert low == pytest.approx([0.0]) and high == pytest.approx([0.5])  # clipped


def test_runs_and_mean_plot(tmp_path):
    fig, (ax,) = curves.figure()
    curves.runs_and_mean(ax, [([0, 1, 2], [0.0, 1.0, 2.0]), ([0, 1], [2.0, 3.0])], "g", "C0")
    mean = ax.get_lines()[-1]
    assert list(mean.get_xdata()) == [0, 1] and list(mean.get_ydata()) == [1.0, 2.0]
    curves.save(fig, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"



# --------------------------------------------------------------------- failures
def test_failure_analysis_plays_evaluates_episodes(tmp_path):
    """On a tiny trained run (central V-critic), the analysis watches exactly the episodes
    marl.core.runner.evaluate plays: the same successes and lengths, step kinds that sum
    to the lost episodes' steps, a value and a confidence for each."""
    import numpy as np
    import torch
    from conftest import TINY, compose, make_trainer
    from omegaconf import OmegaConf

    from marl.analysis import failures
    from marl.build import build
    from marl.core.runner import evaluate

    # a small light box, 12-step episodes: won episodes end early and their envs start
    # a second episode before the last first one ends
    overrides = [*TINY, "algo=mappo", "env.width=4", "env.height=4", "env.box_weight=1",
                 "env.max_steps=12", "logger.plots=[]", "logger.wandb.mode=disabled"]
    run = tmp_path / "run"
    make_trainer(run, overrides).run()
    (run / ".hydra").mkdir(exist_ok=True)
    (run / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(compose(overrides)))
    got = failures.analyse(run, episodes=96, seed=5)
    trainer = make_trainer(tmp_path / "other", overrides)
    from marl.io.checkpoint import latest_checkpoint, load_checkpoint
    env, learner, _ = build(trainer.cfg, 96, seed=5)
    learner.load_networks(load_checkpoint(latest_checkpoint(run / "checkpoints"))["learner"])
    with torch.inference_mode():
        ref = evaluate(env, learner.policy, learner.policy.hidden_dim, seed=5)
    assert got["episodes"] == 96 and 0 < got["failed"] < 96
    assert got["success"] == pytest.approx(float(np.mean(ref["success"])))
    assert got["failed"] == 96 - int(np.sum(ref["success"]))
    assert got["episode_steps"] == int(np.sum(ref["length"]))  # first episodes' steps only
    if got["failed"]:
        assert sum(got["step_share"].values()) == pytest.approx(1.0)
        assert 0.2 < got["confidence_failed"] <= 1.0  # 5 actions: at least 1/5
        assert not math.isnan(got["value_failed"])
    cell, lost, started = got["worst_box_start"]
    assert 0 <= lost <= started


def test_failure_analysis_refuses_another_env(tmp_path):
    from conftest import compose
    from omegaconf import OmegaConf

    from marl.analysis import failures

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(compose(
        ["+experiment=coma_climbing"])))
    with pytest.raises(ValueError, match="env.name='climbing'.*boxpush"):
        failures.analyse(run, 8, 0)


# ----------------------------------------------------------------------- matrix
def test_train_one_reads_the_joint_action_every_greedy_episode_plays(tmp_path):
    """A short climbing run: the joint action read from the actor is the cell the final
    greedy evaluation played (its eval/joint_action_mean is 3 a0 + a1), with its payoff."""
    from marl.analysis.matrix import train_one

    payoff = [[11, -30, 0], [-30, 7, 0], [0, 6, 5]]
    r = train_one("coma_climbing", 0, tmp_path, ["train.total_env_steps=4096",
                                                 "train.eval_every_env_steps=4096"])
    a0, a1 = r["greedy"]
    assert r["payoff"] == payoff[a0][a1] and r["optimal"] == (r["payoff"] == 11)
    assert r["eval_joint_action_mean"] == pytest.approx(3 * a0 + a1)
    assert (tmp_path / "coma_climbing_s0" / "config.yaml").is_file()
    assert len(r["probs"]) == 2 and all(sum(p) == pytest.approx(1.0) for p in r["probs"])
