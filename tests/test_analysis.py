"""marl.analysis: the CIs by hand, a tiny fake sweep aggregated to the known answer, a torn
metrics.jsonl line tolerated, and every committed results.json re-aggregated to its
committed table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from marl.analysis import curves, report, runs, stats, tables

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
def test_mean_ci_by_hand():
    # 1..5: mean 3, sd sqrt(2.5), t_{0.975, 4} = 2.7764
    m, h = stats.mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    assert m == 3.0 and h == pytest.approx(2.7764 * math.sqrt(2.5) / math.sqrt(5), rel=1e-9)
    assert math.isnan(stats.mean_ci([0.7])[1]) and stats.mean_ci([0.7])[0] == 0.7
    assert all(math.isnan(x) for x in stats.mean_ci([]))
    assert stats.t975(1) == 12.7062 and stats.t975(31) == 1.96
    with pytest.raises(ValueError, match="degrees of freedom 0"):
        stats.t975(0)
    assert stats.fmt_ci(0.9, 0.2481) == "0.900 ± 0.248" and stats.fmt_ci(0.9, math.nan) == "0.900"


def test_welch_ci_by_hand():
    # 0.4, 0.6 (mean 0.5, var/n 0.01); 0.1, 0.2, 0.3 (mean 0.2, var/n 0.01/3):
    # diff 0.3, se sqrt(0.04/3); df = (0.04/3)^2 / (0.01^2 + (0.01/3)^2 / 2) = 1.684 -> 1
    m, h = stats.welch_diff([0.4, 0.6], [0.1, 0.2, 0.3])
    assert m == pytest.approx(0.3) and h == pytest.approx(12.7062 * math.sqrt(0.04 / 3))
    # equal variances 1e-4 / 3 a side: se 0.008165, df 4, t 2.7764 -> 0.0227
    m, h = stats.welch_diff([0.9, 0.91, 0.92], [0.1, 0.11, 0.12])
    assert m == pytest.approx(0.8) and h == pytest.approx(2.7764 * math.sqrt(2e-4 / 3))
    assert stats.welch_diff([0.5], [0.1, 0.2]) is None
    assert stats.welch_diff([0.5, 0.5], [0.2, 0.2]) == (pytest.approx(0.3), 0.0)


def test_versus_rows_are_whatever_algorithms_the_runs_hold():
    recs = {"coma": [{"success": x} for x in (0.9, 0.91, 0.92)],
            "iac_v": [{"success": x} for x in (0.1, 0.11, 0.12)],
            "my_new_coma": [{"success": x} for x in (0.5, 0.9)],
            "central_v": [{"success": 0.3}]}
    rows = {r["COMA vs"]: r for r in tables.versus(recs)}
    assert list(rows) == ["central_v", "iac_v", "my_new_coma"]
    assert rows["iac_v"]["reading"] == "COMA ahead"
    assert rows["iac_v"]["final win rate, COMA minus other"] == "+0.800 ± 0.023"
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
    # mean 0.9, sd 0.1, t_{0.975, 2} = 4.3027: half-width 4.3027 * 0.1 / sqrt(3) = 0.248
    assert good["final success"] == "0.900 ± 0.248"
    assert good["final return"] == "0.800 ± 0.248"
    # 1M and 2M: mean 1.5M, sd 0.7071M, t_{0.975, 1} = 12.706 -> 6.35M
    assert good["env steps to 90% success"] == "1.50M ± 6.35M (2/3)"
    # lazier robot: 0.4, 0.5, 0.3 -> mean 0.4, sd 0.1 -> 0.248
    assert good["lazier robot's push share"] == "0.40 ± 0.25"
    # 0.1, 0.3: mean 0.2, sd 0.1414, t_{0.975, 1}: 12.706 * 0.1414 / sqrt(2) = 1.271
    assert bad["final success"] == "0.200 ± 1.271"
    assert bad["env steps to 90% success"] == "not reached (0/2)"
    md = (out / "results.md").read_text()
    assert "| good | 3 | 0.900 ± 0.248 |" in md and "5_bad_s2" in md  # unfinished listed
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
    # 0.6, 0.9, 0.8: mean 0.767, sd 0.1528, t_{0.975, 2} = 4.3027 -> 0.380
    assert row["seeds"] == "3" and row["final success"] == "0.767 ± 0.379"
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
def test_band_is_mean_and_ci_per_step():
    steps, m, h = curves.band([[(1, 0.2), (2, 0.4)], [(1, 0.4), (2, None)]])
    assert steps == [1, 2] and m == pytest.approx([0.3, 0.4])
    assert h == pytest.approx([12.7062 * 0.1, 0.0])  # sd 0.1414 / sqrt(2) = 0.1


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
