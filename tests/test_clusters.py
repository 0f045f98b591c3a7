"""Sweeps on real clusters: a one-node SLURM cluster (tools/slurm-local) with a preempted
and requeued job, a local Ray cluster (`ray start --head`); and the fast checks around
them: the preemption signal agrees everywhere, an unreachable cluster stops the sweep at
start, failed jobs are named with their logs.

The tests marked ``cluster`` start real daemons (SLURM needs root and Debian's slurm-wlm
and munge; Ray needs the ``ray`` extra). They fail, never skip, when a cluster cannot
start. pyproject's addopts deselect them; .ci/run installs both clusters' packages and
runs them with ``python -m pytest -m cluster``.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from marl.io.signals import PREEMPT_SIGNAL, STOP_SIGNALS
from marl.sweep import STDERR_NOTE, sweep_report

ROOT = Path(__file__).resolve().parent.parent
SLURM_LOCAL = ROOT / "tools" / "slurm-local" / "slurm-local"
QUIET = ["logger.progress=false", "logger.plots=[]", "logger.wandb.mode=disabled"]
# a box-pushing run of ~15 s on a shared core, preempted after its second metrics row
TOTAL = 12000
LONG = ["+experiment=coma_boxpush", "train.num_envs=8", f"train.total_env_steps={TOTAL}",
        "train.eval_every_env_steps=6000", "train.eval_episodes=6",
        "train.log_every_env_steps=1500", *QUIET]
TINY = ["+experiment=coma_boxpush", "train.num_envs=8", "train.total_env_steps=2000",
        "train.eval_every_env_steps=1000", "train.eval_episodes=6",
        "train.log_every_env_steps=400", *QUIET]


def job_env(**extra: str) -> dict[str, str]:
    """This checkout first on the path (also for cluster jobs: SLURM and Ray pass the
    environment on), W&B off, one thread per job."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled",
           "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra}
    env.pop("WANDB_API_KEY", None)
    env.pop("SUBMITIT_PREEMPT_SIGNAL", None)
    return env


def train(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300,
          multirun: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "marl.train", *(["-m"] if multirun else []), *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def rows(run_dir: Path) -> list[dict]:
    """metrics.jsonl without wall-clock fields (perf/*)."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(ln).items() if not k.startswith("perf/")}
            for ln in lines if ln.strip()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- fast: the signal agrees
def test_launcher_signal_marl_handler_and_readme_agree(tmp_path):
    """sbatch --signal of the shipped SLURM launcher config == the signal submitit's job
    process requeues on == marl.train.PREEMPT_SIGNAL, one of marl's stop signals == what
    the docs (docs/sweeps.md) and the launcher YAML say."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf
    from submitit.slurm.slurm import SlurmJobEnvironment, _make_sbatch_string

    from marl.train import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base=None):
        cfg = compose("config", return_hydra_config=True, overrides=[
            "hydra/launcher=submitit_slurm_cpu", f"hydra.sweep.dir={tmp_path}"])
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    script = _make_sbatch_string(command="true", folder=tmp_path,
                                 signal_delay_s=launcher["signal_delay_s"],
                                 additional_parameters=launcher["additional_parameters"])
    m = re.search(r"#SBATCH --signal=(\w+)@(\d+)", script)
    assert m, script
    sent = signal.Signals[f"SIG{m.group(1)}"]
    assert sent == PREEMPT_SIGNAL, f"the launcher sends {sent.name}, marl expects " \
        f"{PREEMPT_SIGNAL.name}"
    assert PREEMPT_SIGNAL in STOP_SIGNALS
    assert int(m.group(2)) == launcher["signal_delay_s"] > 0
    assert SlurmJobEnvironment._usr_sig() == PREEMPT_SIGNAL  # submitit's requeue handler
    assert "#SBATCH --requeue" in script
    page = (ROOT / "docs" / "sweeps.md").read_text()
    section = page[page.index("## Sweeps on a cluster"):]
    section = section[:section.index("\n## ", 5)]
    assert f"{PREEMPT_SIGNAL.name}" in section and f"--signal={m.group(1)}@" in section
    for other in ("SIGUSR1", "SIGUSR2"):
        if other != PREEMPT_SIGNAL.name:
            assert f"{other} ahead" not in section and f"{other} before" not in section
    yaml_text = (CONF_DIR / "hydra" / "launcher" / "submitit_slurm_cpu.yaml").read_text()
    assert f"SLURM sends {PREEMPT_SIGNAL.name} signal_delay_s before the time limit" in \
        " ".join(yaml_text.replace("#", " ").split())


DRIVER = textwrap.dedent("""
    import os, runpy, signal, sys, threading, time
    from pathlib import Path
    run_dir = Path(sys.argv[1])

    def previous(signum, frame):  # stands in for submitit's requeue-and-exit handler
        ckpts = sorted(p.name for p in (run_dir / "checkpoints").glob("ckpt_*.pt"))
        print(f"passed on {signal.Signals(signum).name}; checkpoints {ckpts}", flush=True)
        sys.exit(42)

    signal.signal(signal.SIGUSR2, previous)

    def preempt():
        m = run_dir / "metrics.jsonl"
        while not (m.exists() and m.read_text().count("\\n") >= 2):
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGUSR2)

    threading.Thread(target=preempt, daemon=True).start()
    sys.argv = ["marl.train", f"hydra.run.dir={run_dir}", *sys.argv[2:]]
    runpy.run_module("marl.train", run_name="__main__")
""")


def test_preempt_signal_writes_a_checkpoint_then_goes_to_the_previous_handler(tmp_path):
    """The submitit interplay without a cluster: submitit installs its requeue handler on
    SIGUSR2 before the job runs; marl must checkpoint first, then hand the signal on (so
    submitit requeues and exits without a result)."""
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(run_dir), *LONG,
                           "checkpoint.every_env_steps=0"], cwd=tmp_path, env=job_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 42, proc.stdout[-2000:] + proc.stderr[-3000:]
    m = re.search(r"stopped by SIGUSR2 at env_steps=(\d+)", proc.stderr)
    assert m, proc.stderr[-3000:]
    steps = int(m.group(1))
    assert 0 < steps < TOTAL
    # the checkpoint at the signal existed before the previous handler ran
    assert f"passed on SIGUSR2; checkpoints ['ckpt_{steps:012d}.pt']" in proc.stdout
    assert not (run_dir / "summary.json").exists()


# ---------------------------------------------------------------- fast: bad input
def test_sweep_stops_at_start_when_sbatch_is_missing(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    sweep = tmp_path / "sweep"
    proc = train(["hydra/launcher=submitit_slurm_cpu", *TINY, "seed=0,1",
                  f"hydra.sweep.dir={sweep}"], tmp_path, job_env(PATH=str(empty)))
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "hydra/launcher=submitit_slurm_cpu: sbatch not found on PATH" in proc.stderr
    assert "tools/slurm-local" in proc.stderr
    assert not list(sweep.glob("*/.hydra")), "a job started although the cluster is missing"


@pytest.mark.cluster  # needs the ray extra (hydra-ray-launcher), which CI installs
def test_sweep_stops_at_start_when_the_ray_address_is_wrong(tmp_path):
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    sweep = tmp_path / "sweep"
    proc = train(["hydra/launcher=ray_cpu", f"hydra.launcher.ray.init.address={address}",
                  *TINY, "seed=0,1", f"hydra.sweep.dir={sweep}"], tmp_path, job_env(),
                 timeout=120)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert (f"hydra/launcher=ray_cpu: no Ray cluster at "
            f"hydra.launcher.ray.init.address={address}") in proc.stderr
    assert "ray start --head" in proc.stderr
    assert not list(sweep.glob("*/.hydra"))


def test_sweep_report_names_each_failed_job_with_its_log(tmp_path):
    sweep = tmp_path / "sweep"

    def job(name: str, job_id: str, failed: bool) -> Path:
        d = sweep / name
        (d / ".hydra").mkdir(parents=True)
        (d / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(
            {"hydra": {"job": {"id": job_id, "name": "train"}}}))
        (d / "train.log").write_text("")
        if failed:
            (d / "failed.json").write_text(json.dumps({"error": f"{name} broke",
                                                       "exit_code": 1}))
        return d

    noted = job("0_coma_s0", "job_id_for_0", failed=True)  # noted its own stderr file
    (noted / ".hydra" / STDERR_NOTE).write_text("/ray/logs/worker-1.err\n")
    job("1_coma_s1", "7_1", failed=True)  # a submitit job: its log by job id
    err = sweep / ".submitit" / "7_1" / "7_1_0_log.err"
    err.parent.mkdir(parents=True)
    err.write_text("Traceback ...")
    job("2_coma_s2", "job_id_for_2", failed=False)  # neither failed.json nor summary.json
    ok = job("3_coma_s3", "7_3", failed=False)
    (ok / "summary.json").write_text(json.dumps({"eval/return_mean": 1.0}))
    report = sweep_report(sweep)
    by_name = {Path(j["dir"]).name: j for j in report["jobs"]}
    assert (report["n_jobs"], report["n_failed"]) == (4, 3)
    assert by_name["0_coma_s0"]["log"] == "/ray/logs/worker-1.err"
    assert by_name["0_coma_s0"]["error"] == "0_coma_s0 broke"
    assert by_name["1_coma_s1"]["log"] == str(err)
    assert by_name["2_coma_s2"] == {"dir": str(sweep / "2_coma_s2"), "status": "incomplete",
                                    "log": str(sweep / "2_coma_s2" / "train.log")}
    assert by_name["3_coma_s3"]["status"] == "ok" and "log" not in by_name["3_coma_s3"]


# ---------------------------------------------------------------- SLURM
@pytest.fixture
def slurm_cluster():
    """A one-node SLURM cluster (tools/slurm-local) in a fresh directory; stopped always."""
    state = Path(tempfile.mkdtemp(prefix="marl-slurm-", dir="/tmp"))
    env = job_env(SLURM_CONF=str(state / "slurm.conf"), SLURMCTLD_PORT=str(free_port()),
                  SLURMD_PORT=str(free_port()))
    start = subprocess.run([str(SLURM_LOCAL), "start", str(state)], capture_output=True,
                           text=True, timeout=120, env=env)
    if start.returncode != 0:
        subprocess.run([str(SLURM_LOCAL), "stop", str(state)], timeout=60)
        pytest.fail("could not start the local SLURM cluster with tools/slurm-local/"
                    f"slurm-local (root and `apt-get install slurm-wlm munge` needed):\n"
                    f"{start.stdout}{start.stderr}")
    try:
        yield env
    finally:
        subprocess.run(["scancel", "--full", "--user", getpass.getuser()], env=env,
                       timeout=60, capture_output=True)
        subprocess.run([str(SLURM_LOCAL), "stop", str(state)], timeout=60)
        shutil.rmtree(state, ignore_errors=True)


def wait_for(what: str, ready, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended (status {proc.returncode}) before {what}:\n"
                        f"{log.read_text()[-4000:]}")
        if time.monotonic() > end:
            pytest.fail(f"no {what} after {timeout:.0f} s:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)


@pytest.mark.cluster
def test_slurm_sweep_with_a_preempted_job_loses_nothing(slurm_cluster, tmp_path):
    """A real SLURM sweep of two seeds; seed 1 gets the time-limit signal mid-run (what
    `sbatch --signal=USR2@120` does 2 min before the limit), writes a checkpoint at that
    env step, is requeued by submitit, resumes, and writes the same rows as a run that was
    never interrupted."""
    env = slurm_cluster
    sweep, log = tmp_path / "sweep", tmp_path / "sweep.log"
    with log.open("w") as out:
        sweep_proc = subprocess.Popen(
            [sys.executable, "-m", "marl.train", "-m", "hydra/launcher=submitit_slurm_cpu",
             *LONG, "seed=0,1", "resume=true", "checkpoint.every_env_steps=0",
             "hydra.launcher.mem_gb=1", "hydra.launcher.timeout_min=30",
             f"hydra.sweep.dir={sweep}"],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        victim = sweep / "1_coma_s1"
        metrics = victim / "metrics.jsonl"
        wait_for("metrics rows of seed 1", lambda: metrics.exists()
                 and len(metrics.read_text().splitlines()) >= 2, sweep_proc, log, 240)
        job_id = yaml.safe_load((victim / ".hydra" / "hydra.yaml").read_text())[
            "hydra"]["job"]["id"]
        subprocess.run(["scancel", f"--signal={PREEMPT_SIGNAL.name[3:]}", str(job_id)],
                       env=env, check=True, timeout=60)
        # meanwhile, the same seed uninterrupted, outside the cluster
        ref = train([*LONG, "seed=1", "train.torch_threads=1", f"hydra.run.dir={tmp_path}/ref"],
                    tmp_path, job_env(), multirun=False)
        assert ref.returncode == 0, ref.stderr[-3000:]
        sweep_proc.wait(timeout=400)
    finally:
        if sweep_proc.poll() is None:
            sweep_proc.kill()
    out = log.read_text()
    assert sweep_proc.returncode == 0, out[-4000:]
    report = json.loads((sweep / "sweep_summary.json").read_text())
    assert (report["n_jobs"], report["n_failed"]) == (2, 0), report
    for seed in (0, 1):
        summary = json.loads((sweep / f"{seed}_coma_s{seed}" / "summary.json").read_text())
        assert (summary["seed"], summary["env_steps"]) == (seed, TOTAL)
    job_log = Path((victim / ".hydra" / STDERR_NOTE).read_text().strip()).read_text()
    assert f"Caught signal {PREEMPT_SIGNAL.name}" in job_log, job_log[-3000:]
    stopped = re.search(rf"stopped by {PREEMPT_SIGNAL.name} at env_steps=(\d+)", job_log)
    resumed = re.search(r"resumed from \S+ at env_steps=(\d+)", job_log)
    assert stopped and resumed, job_log[-3000:]
    at_signal, resumed_at = int(stopped.group(1)), int(resumed.group(1))
    assert 0 < at_signal < TOTAL, "the signal did not land mid-run"
    print(f"preempted at env_steps={at_signal}, resumed at env_steps={resumed_at}: "
          f"{at_signal - resumed_at} env steps lost")
    assert at_signal - resumed_at == 0, "env steps lost at preemption"
    assert (victim / "checkpoints" / f"ckpt_{at_signal:012d}.pt").exists()
    assert rows(victim) == rows(tmp_path / "ref")
    other = Path((sweep / "0_coma_s0" / ".hydra" / STDERR_NOTE).read_text().strip())
    assert "resumed from" not in other.read_text()


# ---------------------------------------------------------------- Ray
@pytest.fixture
def ray_cluster():
    """`ray start --head` with 2 CPUs in a fresh temp dir; its address. Stopped always:
    the blocking `ray start` and every process of its session (by pid)."""
    import psutil

    temp = Path(tempfile.mkdtemp(prefix="marl-ray-", dir="/tmp"))  # short socket paths
    port = free_port()
    env = job_env(RAY_USAGE_STATS_ENABLED="0")
    ray_exe = Path(sys.executable).parent / "ray"
    with (temp / "ray-start.log").open("w") as out:
        head = subprocess.Popen(
            [str(ray_exe), "start", "--head", "--block", "--num-cpus=2", f"--port={port}",
             f"--temp-dir={temp}", "--include-dashboard=false", "--disable-usage-stats",
             "--object-store-memory=100000000"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        end = time.monotonic() + 120
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if head.poll() is not None or time.monotonic() > end:
                pytest.fail("could not start a Ray head with `ray start --head` (the `ray` "
                            f"extra is needed):\n{(temp / 'ray-start.log').read_text()}")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", env, temp
    finally:
        head.terminate()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
        for p in psutil.process_iter(["pid", "cmdline"]):
            with contextlib.suppress(psutil.Error):
                if str(temp) in " ".join(p.info["cmdline"] or []):
                    p.kill()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.cluster
def test_ray_cluster_2x2_sweep_reports_failed_jobs_and_finishes_the_others(ray_cluster,
                                                                           tmp_path):
    address, env, ray_temp = ray_cluster
    sweep = tmp_path / "sweep"
    # algo.actor_lr=-1 is a bad override: those two jobs fail, the other two must finish
    proc = train(["hydra/launcher=ray_cpu", f"hydra.launcher.ray.init.address={address}",
                  *TINY, "seed=0,1", "algo.actor_lr=2e-3,-1", f"hydra.sweep.dir={sweep}"],
                 tmp_path, env, timeout=400)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "error: 2 of 4 sweep jobs did not finish" in proc.stderr
    report = json.loads((sweep / "sweep_summary.json").read_text())
    by_name = {Path(j["dir"]).name: j for j in report["jobs"]}
    assert set(by_name) == {"0_coma_s0", "1_coma_s0", "2_coma_s1", "3_coma_s1"}
    assert report["n_failed"] == 2
    for name, seed in (("0_coma_s0", 0), ("2_coma_s1", 1)):
        assert by_name[name]["status"] == "ok"
        summary = json.loads((sweep / name / "summary.json").read_text())
        assert (summary["seed"], summary["env_steps"]) == (seed, 2000)
        assert rows(sweep / name)[-1]["env_steps"] == 2000
    for name in ("1_coma_s0", "3_coma_s1"):
        job = by_name[name]
        assert job["status"] == "failed" and "algo.actor_lr" in job["error"], job
        job_log = Path(job["log"])
        # a worker of our cluster ran it (the launcher did not start a Ray of its own)
        assert job_log.is_relative_to(ray_temp) and job_log.name.startswith("worker-"), job_log
        assert "algo.actor_lr = -1.0 is invalid" in job_log.read_text()
        assert not (sweep / name / "summary.json").exists()
