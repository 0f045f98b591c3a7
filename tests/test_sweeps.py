"""Sweeps on real Hydra launchers (joblib, submitit), Optuna, and the sweep aggregator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import QUIET, compose
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


def test_joblib_workers_import_a_plugin_from_a_relative_plugin_path(tmp_path):
    """The workers are other processes: they import the plugin the launch directory's
    ``plugin_path`` names (here relative), and each job records it in its config."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "half_coma.py").write_text(
        "from marl.algos.coma.advantages import ADVANTAGES, Advantage\n"
        "def half(x):\n"
        "    adv, base = ADVANTAGES['coma'].fn(x)\n"
        "    return 0.5 * adv, base\n"
        "ROW = Advantage(('central_q',), half)\n")
    sweep = tmp_path / "sweep"
    multirun(["hydra/launcher=joblib_cpu", *TINY, "seed=0,1", "plugin_path=[mine]",
              "algo.advantage=half_coma:ROW", f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 2
    for job in jobs:
        assert job_config(job)["plugin_path"] == ["mine"]
        assert json.loads((job / "summary.json").read_text())["env_steps"] == 2000


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


@pytest.mark.slow
def test_optuna_keeps_its_study_in_sqlite_storage(tmp_path):
    """hydra.sweeper.storage=sqlite:///... (the preset's comment): the study is saved, and
    a second sweep with the same storage and study name continues it (optuna 2.10 failed
    here with an AssertionError under SQLAlchemy 2; the sweep extra pins sqlalchemy<2)."""
    import optuna

    db = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = ["+experiment=coma_boxpush_optuna", *TINY[1:], "hydra/launcher=basic",
            f"hydra.sweeper.storage={db}", "hydra.sweeper.study_name=kept"]
    multirun([*args, "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={tmp_path / 'a'}"],
             cwd=tmp_path)
    returns = sorted(json.loads(p.read_text())["eval/return_mean"]
                     for p in (tmp_path / "a").glob("*/summary.json"))
    study = optuna.load_study(study_name="kept", storage=db)
    assert sorted(t.value for t in study.trials) == pytest.approx(returns) and len(returns) == 2
    multirun([*args, "hydra.sweeper.n_trials=1", f"hydra.sweep.dir={tmp_path / 'b'}"],
             cwd=tmp_path)
    study = optuna.load_study(study_name="kept", storage=db)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3


@pytest.mark.parametrize(("sqlalchemy", "storage", "refused"), [
    ("2.1.9", "sqlite:///optuna.db", True), ("1.4.54", "sqlite:///optuna.db", False),
    ("2.1.9", None, False)])
def test_optuna_storage_beside_sqlalchemy_2_is_refused_in_one_line(monkeypatch, capsys,
                                                                  sqlalchemy, storage, refused):
    import importlib.metadata

    from omegaconf import OmegaConf

    from marl.sweep import check_storage

    versions = {"sqlalchemy": sqlalchemy, "optuna": "2.10.1"}
    monkeypatch.setattr(importlib.metadata, "version", lambda name: versions[name.lower()])
    target = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    config = OmegaConf.create({"hydra": {"sweeper": {"_target_": target, "storage": storage}}})
    if not refused:
        check_storage(config)
        assert capsys.readouterr().err == ""
        return
    with pytest.raises(SystemExit) as exit_:
        check_storage(config)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: hydra.sweeper.storage = 'sqlite:///optuna.db' needs SQLAlchemy < 2 with optuna "
        "2.10.1 (SQLAlchemy 2.1.9 is installed): pip install 'sqlalchemy<2' (the sweep extra "
        "pins it), or storage=null"]
