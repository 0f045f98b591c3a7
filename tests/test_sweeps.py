"""Sweeps on real Hydra launchers (joblib, submitit), Optuna, and the sweep aggregator."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import QUIET, compose, load_script
from conftest import TINY as BASE

TINY = [*BASE, *QUIET, "train.eval_every_env_steps=800", "train.log_every_env_steps=400"]


def multirun(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_SILENT": "true", "WANDB_MODE": "disabled"}
    env.pop("WANDB_API_KEY", None)
    proc = subprocess.run([sys.executable, "-m", "marl.train", "-m", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def job_config(job_dir: Path) -> dict:
    return yaml.safe_load((job_dir / ".hydra" / "config.yaml").read_text())


def test_joblib_2x2_each_job_has_its_own_dir_config_and_results(tmp_path):
    sweep = tmp_path / "sweep"
    multirun(["hydra/launcher=joblib_cpu", *TINY, "seed=0,1", "algo=coma,iac_v",
              f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    hydra_cfg = yaml.safe_load((sweep / "multirun.yaml").read_text())["hydra"]
    assert hydra_cfg["launcher"]["_target_"].endswith("JoblibLauncher")
    assert hydra_cfg["launcher"]["n_jobs"] == 2
    expected = {"0_coma_s0": ("coma", 0), "1_iac_v_s0": ("iac_v", 0),
                "2_coma_s1": ("coma", 1), "3_iac_v_s1": ("iac_v", 1)}
    assert {p.name for p in sweep.iterdir() if p.is_dir()} == set(expected)
    for name, (algo, seed) in expected.items():
        job = sweep / name
        cfg = job_config(job)
        assert (cfg["algo"]["name"], cfg["algo"]["advantage"], cfg["seed"]) == (algo, algo, seed)
        assert cfg["train"]["torch_threads"] == 1
        assert cfg["algo"]["actor_lr"] == 2e-3  # the experiment's settings, for every algo
        summary = json.loads((job / "summary.json").read_text())
        assert (summary["algo"], summary["seed"], summary["env_steps"]) == (algo, seed, 2000)
        rows = [json.loads(x) for x in (job / "metrics.jsonl").read_text().splitlines()]
        assert rows[-1]["env_steps"] == 2000
        check_credit_metrics(rows)
        job_hydra = yaml.safe_load((job / ".hydra" / "hydra.yaml").read_text())["hydra"]
        assert job_hydra["job"]["env_set"]["OMP_NUM_THREADS"] == "1"


def check_credit_metrics(rows: list[dict]) -> None:
    """Credit metrics of a real run: push shares of the two robots sum to 1 wherever any
    push happened, rates lie in [0, 1], and greedy evaluations carry their own."""
    train_rows = [r for r in rows if "credit/robot_0/idle_rate" in r]
    assert train_rows, "no credit metrics in metrics.jsonl"
    for r in train_rows:
        for prefix in ("credit", "eval/credit"):
            for kind in ("push_share", "push_attempt_share"):
                shares = [r.get(f"{prefix}/robot_{i}/{kind}") for i in (0, 1)]
                if shares[0] is None:
                    assert shares[1] is None  # both absent: nobody pushed
                    continue
                assert sum(shares) == pytest.approx(1.0)
                assert all(0.0 <= s <= 1.0 for s in shares)
        for i in (0, 1):
            assert 0.0 <= r[f"credit/robot_{i}/idle_rate"] <= 1.0
    assert any("credit/robot_0/push_attempt_share" in r for r in rows)
    assert any("eval/credit/robot_0/idle_rate" in r for r in rows)


def test_submitit_local_runs_a_job(tmp_path):
    sweep = tmp_path / "sweep_submitit"
    multirun(["hydra/launcher=submitit_local_cpu", *TINY, "seed=3", "algo=central_v",
              f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    job = sweep / "0_central_v_s3"
    summary = json.loads((job / "summary.json").read_text())
    assert (summary["algo"], summary["seed"], summary["env_steps"]) == ("central_v", 3, 2000)
    assert job_config(job)["train"]["torch_threads"] == 1
    # submitit's own record of the job: its pickled result under .submitit/<job id>/
    results = list((sweep / ".submitit").rglob("*_result.pkl"))
    assert results, f"no submitit result in {sorted((sweep / '.submitit').rglob('*'))}"


def test_slurm_config_makes_the_expected_sbatch_script(tmp_path, monkeypatch):
    """The shipped SLURM launcher config, through submitit as the launcher calls it
    (no cluster here: a fake srun on PATH, the sbatch script is only written)."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text("#!/bin/sh\nexit 0\n")
    (fake / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    cfg = compose(["hydra/launcher=submitit_slurm_cpu", "hydra.launcher.partition=gpu_long",
                   "hydra.job.name=train", f"hydra.sweep.dir={tmp_path}",
                   "+experiment=coma_boxpush"], return_hydra_config=True)
    assert cfg.train.torch_threads == 1
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("SlurmLauncher")
    # what BaseSubmititLauncher.launch does with these parameters
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm",
                                     slurm_max_num_timeout=launcher["max_num_timeout"])
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{
        k if k in base else f"slurm_{k}": v for k, v in launcher.items()
        if k not in ("_target_", "submitit_folder", "max_num_timeout")})
    script = executor._executor._make_submission_file_text("python -m marl.train", "uid")
    for line in ("#SBATCH --partition=gpu_long", "#SBATCH --time=60",
                 "#SBATCH --cpus-per-task=1", "#SBATCH --mem=4GB", "#SBATCH --requeue",
                 "#SBATCH --signal=USR2@120"):
        assert line in script, line
    assert launcher["max_num_timeout"] >= 1 and launcher["array_parallelism"] >= 1


@pytest.mark.slow
def test_optuna_objective_is_the_final_greedy_return(tmp_path):
    sweep = tmp_path / "optuna"
    # the basic launcher runs both trials in this process (the experiment's joblib launcher
    # would spawn workers: same objective, slower test)
    multirun(["+experiment=coma_boxpush_optuna", *TINY[1:], "hydra.sweeper.n_trials=2",
              "hydra/launcher=basic", f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    returns = [json.loads((d / "summary.json").read_text())["eval/return_mean"]
               for d in sweep.iterdir() if (d / "summary.json").is_file()]
    assert len(returns) == 2
    assert best["best_value"] == pytest.approx(max(returns))
    assert set(best["best_params"]) == {"algo.actor_lr", "algo.td_lambda"}
    assert 1e-4 <= best["best_params"]["algo.actor_lr"] <= 1e-2
    assert 0.5 <= best["best_params"]["algo.td_lambda"] <= 1.0


# ---------------------------------------------------------------- aggregate.py
def _aggregate_module():
    return load_script("experiments/credit_assignment/aggregate.py")


def fake_run(d: Path, name: str, algo: str, seed: int, curve: list[tuple[int, float]],
             final: tuple[float, float] | None, shares: tuple[float, float] = (0.5, 0.5)):
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


def test_aggregate_on_synthetic_sweep_gives_the_known_answer(tmp_path):
    agg = _aggregate_module()
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
    result = agg.aggregate([sweep], out, threshold=0.9)
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
    assert list(rows) == ["good", "bad"] or list(rows) == ["bad", "good"]
    md = (out / "results.md").read_text()
    assert "| good | 3 | 0.900 ± 0.248 |" in md and "5_bad_s2" in md  # unfinished listed
    assert (out / "curves_exp.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((out / "results.json").read_text())
    assert len(saved["runs"]) == 6
    assert agg.mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])[1] == pytest.approx(
        2.7764 * math.sqrt(2.5) / math.sqrt(5), rel=1e-4)


def test_smax_versus_coma_is_welchs_t_on_the_final_win_rates():
    mod = load_script("experiments/smax/ablation/aggregate.py")
    # coma 0.4, 0.6 (mean 0.5, var/n 0.01); qv 0.1, 0.2, 0.3 (mean 0.2, var/n 0.01/3):
    # diff 0.3, se sqrt(0.04/3) = 0.11547; Welch df = (0.04/3)^2 / (0.01^2 + (0.01/3)^2 / 2)
    # = 1.684 -> 1: t_{0.975, 1} = 12.706 -> half-width 1.4672
    m, h = mod.welch_diff([0.4, 0.6], [0.1, 0.2, 0.3])
    assert m == pytest.approx(0.3) and h == pytest.approx(12.706 * (0.04 / 3) ** 0.5, rel=1e-4)
    assert mod.welch_diff([0.5], [0.1, 0.2]) is None
    runs = {"coma": [{"success": x} for x in (0.9, 0.91, 0.92)],
            "iac_v": [{"success": x} for x in (0.1, 0.11, 0.12)],
            "qmix": [{"success": x} for x in (0.5, 0.9)],
            "central_v": [{"success": 0.3}]}
    rows = {r["COMA vs"]: r for r in mod.versus_coma(runs)}
    assert rows["iac_v"]["reading"] == "COMA ahead"
    # equal variances 1e-4 / 3 a side: se 0.008165, Welch df 4, t_{0.975, 4} = 2.776
    assert rows["iac_v"]["final win rate, COMA minus other"] == "+0.800 ± 0.023"
    assert rows["qmix"]["reading"] == "no difference shown (CI contains 0)"
    assert rows["central_v"]["reading"].startswith("too few seeds")


def test_smax_aggregate_merges_previous_results_and_a_new_run_replaces_its_record(tmp_path):
    mod = load_script("experiments/smax/ablation/aggregate.py")
    first = tmp_path / "first"
    fake_run(first / "coma_s0", "coma_smax_3m", "coma", 0, [(1_000_000, 0.5), (2_000_000, 0.6)],
             (0.6, 1.0))
    fake_run(first / "coma_s1", "coma_smax_3m", "coma", 1, [(2_000_000, 0.7)], (0.7, 1.2))
    out1 = tmp_path / "out1"
    assert mod.main([str(first), "--out", str(out1), "--threshold", "0.8"]) == 0
    # the first runs' directories are gone; seed 1 is run again, seed 2 is new
    second = tmp_path / "second"
    fake_run(second / "coma_s1", "coma_smax_3m", "coma", 1, [(2_000_000, 0.9)], (0.9, 1.5))
    fake_run(second / "coma_s2", "coma_smax_3m", "coma", 2, [(2_000_000, 0.8)], (0.8, 1.4))
    out2 = tmp_path / "out2"
    assert mod.main([str(second), "--previous", str(out1 / "results.json"), "--out", str(out2),
                     "--threshold", "0.8"]) == 0
    saved = json.loads((out2 / "results.json").read_text())
    by_seed = {r["seed"]: r for r in saved["runs"]}
    assert sorted(by_seed) == [0, 1, 2]
    assert by_seed[1]["success"] == 0.9 and "merged_from" not in by_seed[1]  # the new run
    assert by_seed[0]["merged_from"] and by_seed[0]["curve"] == [[1_000_000, 0.5, 0.5],
                                                                 [2_000_000, 0.6, 0.6]]
    row = saved["tables"]["coma_smax_3m"]["algorithms"][0]
    # 0.6, 0.9, 0.8: mean 0.767, sd 0.1528, t_{0.975, 2} = 4.3027 -> 0.380
    assert row["seeds"] == "3" and row["final success"] == "0.767 ± 0.379"
    assert "1 of them merged" in (out2 / "results.md").read_text()
    with pytest.raises(SystemExit, match="threshold"):
        mod.main(["--previous", str(out1 / "results.json"), "--out", str(out2),
                  "--threshold", "0.9"])
