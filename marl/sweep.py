"""Hydra callback that reports a multirun: which jobs finished, which failed.

Registered in ``conf/config.yaml`` (``hydra.callbacks.sweep_summary``). Before the first
job it checks that the launcher's cluster is reachable (``sbatch`` and ``sinfo`` for the
SLURM launcher, the cluster address for the Ray launcher) and stops the sweep with a
message naming the launcher and what to check. After the last job it writes
``<sweep dir>/sweep_summary.json`` (each job's status and log file) and prints one line
per job; if any job failed (its directory holds ``failed.json``, or no ``summary.json``)
the sweep exits with status 1 after every job has run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from marl.io.signals import PREEMPT_SIGNAL


class ClusterUnreachable(RuntimeError):
    """The sweep's launcher cannot reach its cluster."""


PLUGIN_EXTRAS = {
    ("hydra/launcher", "joblib"): ("hydra_plugins.hydra_joblib_launcher", "sweep"),
    ("hydra/launcher", "submitit_local"): ("hydra_plugins.hydra_submitit_launcher", "sweep"),
    ("hydra/launcher", "submitit_slurm"): ("hydra_plugins.hydra_submitit_launcher", "sweep"),
    ("hydra/launcher", "ray"): ("hydra_plugins.hydra_ray_launcher", "ray"),
    ("hydra/sweeper", "optuna"): ("hydra_plugins.hydra_optuna_sweeper", "sweep"),
}
"""(group, plugin schema our conf/ extends) -> (the plugin's module, the extra installing it)."""
MISSING_EXTRA = "marl.sweep:missing-extra:"
"""``_target_`` prefix of the stand-in schema of a plugin whose extra is not installed."""


def register_missing_plugins() -> None:
    """Stand in for the schemas of Hydra plugins that are not installed, so that a sweep
    asking for one composes and :class:`SweepSummary` stops it before the first job with
    a line naming the extra to install (instead of Hydra's "Could not load")."""
    from hydra.core.config_store import ConfigStore

    for (group, name), (module, extra) in PLUGIN_EXTRAS.items():
        if importlib.util.find_spec(module.split(".")[0]) is None or \
                importlib.util.find_spec(module) is None:
            ConfigStore.instance().store(group=group, name=name,
                                         node={"_target_": f"{MISSING_EXTRA}{extra}"})


def check_plugins(config: DictConfig) -> None:
    """Raise SystemExit(2) after one line if the sweep's launcher or sweeper is a stand-in."""
    for group in ("launcher", "sweeper"):
        target = str(config.hydra[group].get("_target_", ""))
        if target.startswith(MISSING_EXTRA):
            extra = target.removeprefix(MISSING_EXTRA)
            choice = config.hydra.runtime.choices.get(f"hydra/{group}", group)
            print(f"error: hydra/{group}={choice} needs the {extra} extra, which is not "
                  f'installed: pip install "marl[{extra}]" (in a checkout: pip install -e '
                  f'".[{extra}]")', file=sys.stderr)
            raise SystemExit(2)


def check_storage(config: DictConfig) -> None:
    """Raise SystemExit(2) after one line if Optuna is to keep its study in a database
    (``hydra.sweeper.storage``) beside SQLAlchemy 2: optuna 2.10 (hydra-optuna-sweeper
    needs optuna < 3) fails creating the study there, with a bare AssertionError. The
    sweep extra pins ``sqlalchemy<2``; this catches an environment that moved it."""
    from importlib.metadata import PackageNotFoundError, version

    sweeper = config.hydra.sweeper
    storage = sweeper.get("storage")
    if not storage or "optuna" not in str(sweeper.get("_target_", "")).lower():
        return
    try:
        sqlalchemy, optuna = version("sqlalchemy"), version("optuna")
    except PackageNotFoundError:
        return  # the sweeper's own import names what is missing
    if int(sqlalchemy.split(".")[0]) >= 2 and int(optuna.split(".")[0]) < 3:
        print(f"error: hydra.sweeper.storage = {storage!r} needs SQLAlchemy < 2 with optuna "
              f"{optuna} (SQLAlchemy {sqlalchemy} is installed): pip install 'sqlalchemy<2' "
              "(the sweep extra pins it), or storage=null", file=sys.stderr)
        raise SystemExit(2)


def check_launcher(launcher: str, target: str, launcher_cfg: Any) -> None:
    """Raise :class:`ClusterUnreachable` if the cluster of launcher ``launcher`` (its config
    group option; ``target`` is the plugin class) cannot take jobs."""
    if target.endswith("SlurmLauncher"):
        _check_slurm(launcher)
    elif target.endswith("RayLauncher"):
        _check_ray(launcher, launcher_cfg)


def _check_slurm(launcher: str) -> None:
    """The SLURM launcher's cluster: ``sbatch`` on PATH, a controller ``sinfo`` reaches,
    and the preemption signal marl checkpoints on."""
    if shutil.which("sbatch") is None:
        raise ClusterUnreachable(
            f"hydra/launcher={launcher}: sbatch not found on PATH; submit from a node of "
            "a SLURM cluster (a login node), or start one on this host with "
            "tools/slurm-local/slurm-local start")
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%P %a"], capture_output=True,
                              text=True, timeout=30)
        problem = proc.stderr.strip() if proc.returncode else ""
    except (OSError, subprocess.TimeoutExpired) as e:
        problem = str(e)
    if problem:
        raise ClusterUnreachable(
            f"hydra/launcher={launcher}: the SLURM controller does not answer (sinfo: "
            f"{problem}); check that slurmctld runs and SLURM_CONF="
            f"{os.environ.get('SLURM_CONF', '<unset>')} points at its slurm.conf")
    sig = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    if f"SIG{sig}" != PREEMPT_SIGNAL.name:
        raise ClusterUnreachable(
            f"hydra/launcher={launcher}: SUBMITIT_PREEMPT_SIGNAL={sig} but marl checkpoints "
            f"on {PREEMPT_SIGNAL.name}; unset SUBMITIT_PREEMPT_SIGNAL")


def _check_ray(launcher: str, launcher_cfg: Any) -> None:
    """The Ray launcher's cluster: nothing to check when it starts a local Ray, else a
    head node that accepts a connection at ``hydra.launcher.ray.init.address``."""
    init = launcher_cfg.get("ray", {}).get("init", {}) or {}
    address = init.get("address")
    if address is None:  # the launcher starts a local Ray
        return
    where = f"hydra.launcher.ray.init.address={address}"
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS") or _ray_current_cluster()
        if not address:
            raise ClusterUnreachable(
                f"hydra/launcher={launcher}: {where} but no running Ray cluster was found "
                "on this node (no RAY_ADDRESS, no /tmp/ray/ray_current_cluster); start "
                "one with `ray start --head` or give the head's host:port")
    host, _, port = address.split("://")[-1].rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=5):
            pass
    except (OSError, ValueError) as e:
        raise ClusterUnreachable(
            f"hydra/launcher={launcher}: no Ray cluster at {where} ({e}); check the "
            "head node's address (`ray status` on the head prints it) or start one with "
            "`ray start --head`") from e


def _ray_current_cluster() -> str | None:
    path = Path("/tmp/ray/ray_current_cluster")
    return path.read_text().strip() if path.is_file() else None


STDERR_NOTE = "stderr_path"  # in the job's .hydra/: the file its stderr went to


def _stderr_file() -> Path | None:
    """The file this process's stderr goes to; None for a terminal or a pipe."""
    try:
        target = Path(os.readlink("/proc/self/fd/2"))
    except OSError:
        return None
    return target if target.is_file() else None


def note_stderr(hydra_dir: Path) -> None:
    """Note in a job's ``.hydra/`` the file its stderr goes to (see
    :meth:`SweepSummary.on_job_start`); a terminal or a pipe is not noted."""
    target = _stderr_file()
    if target is not None and hydra_dir.is_dir():
        (hydra_dir / STDERR_NOTE).write_text(f"{target}\n")


REFUSED_DIR = "refused"
"""In the sweep directory: one JSON record per job refused in a directory that holds
another run (a finished job's, rerun with changed values): the job's own directory is
not changed, so the refusal is kept here, where the sweep summary reads it."""


def _refusal_record(job_dir: Path) -> Path | None:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    sweep_dir = Path(HydraConfig.get().sweep.dir).absolute()
    try:
        rel = job_dir.absolute().relative_to(sweep_dir)
    except ValueError:
        return None
    return sweep_dir / REFUSED_DIR / f"{str(rel).replace(os.sep, '__')}.json"


def record_refusal(job_dir: Path, message: str) -> None:
    """Keep a refused job's error in the sweep directory (:data:`REFUSED_DIR`)."""
    path = _refusal_record(job_dir)
    if path is not None:
        path.parent.mkdir(exist_ok=True)
        record = {"dir": str(job_dir.absolute()), "error": message}
        if (log := _stderr_file()) is not None:
            record["log"] = str(log)
        path.write_text(json.dumps(record) + "\n")


def clear_refusal(job_dir: Path) -> None:
    """A job that starts drops an earlier attempt's refusal record."""
    path = _refusal_record(job_dir)
    if path is not None:
        path.unlink(missing_ok=True)


def _refusals(sweep_dir: Path) -> dict[str, dict[str, str]]:
    """Refused jobs' records by job directory: ``error``, and ``log`` where the refused
    job's stderr went to a file."""
    out = {}
    for p in sorted((sweep_dir / REFUSED_DIR).glob("*.json")):
        try:
            rec = json.loads(p.read_text())
            out[str(Path(rec["dir"]).absolute())] = {
                "error": str(rec["error"]), **({"log": str(rec["log"])} if "log" in rec else {})}
        except (ValueError, KeyError, TypeError):
            out[str(p)] = {"error": f"unreadable refusal record {p}"}
    return out


def _job_log(d: Path, sweep_dir: Path) -> str:
    """The job's log file: where its stderr went (noted by the job itself: submitit's or
    Ray's worker log), else submitit's log by job id, else Hydra's job log."""
    note = d / ".hydra" / STDERR_NOTE
    if note.is_file():
        return note.read_text().strip()
    hydra_yaml = d / ".hydra" / "hydra.yaml"
    job_id = name = None
    if hydra_yaml.is_file():
        import yaml

        job = (yaml.safe_load(hydra_yaml.read_text()) or {}).get("hydra", {}).get("job", {})
        job_id, name = job.get("id"), job.get("name")
    if job_id:
        err = sweep_dir / ".submitit" / str(job_id) / f"{job_id}_0_log.err"
        if err.is_file():
            return str(err)
    logs = sorted(d.glob("*.log"))
    own = d / f"{name}.log"
    return str(own if own.is_file() else logs[0] if logs else own)


def sweep_report(sweep_dir: Path) -> dict[str, Any]:
    """Status of every job directory (one holding ``.hydra/``) under ``sweep_dir``."""
    jobs = []
    refused = _refusals(sweep_dir)
    for d in sorted(p.parent for p in sweep_dir.rglob(".hydra")):
        if str(d.absolute()) in refused:
            rec = refused[str(d.absolute())]
            jobs.append({"dir": str(d), "status": "refused", "error": rec["error"],
                         "log": rec.get("log") or _job_log(d, sweep_dir)})
        elif (d / "failed.json").exists():
            err = json.loads((d / "failed.json").read_text())["error"]
            jobs.append({"dir": str(d), "status": "failed", "error": err,
                         "log": _job_log(d, sweep_dir)})
        elif (d / "summary.json").exists():
            s = json.loads((d / "summary.json").read_text())
            jobs.append({"dir": str(d), "status": "ok",
                         "eval/return_mean": s.get("eval/return_mean"),
                         "eval/success_rate": s.get("eval/success_rate")})
        else:
            jobs.append({"dir": str(d), "status": "incomplete", "log": _job_log(d, sweep_dir)})
    failed = [j for j in jobs if j["status"] != "ok"]
    return {"jobs": jobs, "n_jobs": len(jobs), "n_failed": len(failed)}


class SweepSummary(Callback):
    """Check the cluster before the sweep; write and print the sweep report after it, and
    fail the sweep if a job failed."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """In the job's own process: note the file its stderr goes to (a cluster job's log:
        submitit's ``.submitit/<id>/<id>_0_log.err``, a Ray worker's ``worker-*.err``), so
        the sweep summary can name a failed job's log. A terminal or a pipe is not noted."""
        subdir = config.hydra.output_subdir
        if subdir:  # else the job writes its .hydra/ once it holds its directory
            note_stderr(Path(config.hydra.runtime.output_dir) / str(subdir))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_plugins(config)
        check_storage(config)
        launcher_cfg = config.hydra.launcher
        target = str(launcher_cfg.get("_target_", ""))
        name = config.hydra.runtime.choices.get("hydra/launcher", target)
        try:
            check_launcher(name, target, launcher_cfg)
        except ClusterUnreachable as e:
            print(f"error: {e}", file=sys.stderr)
            # Hydra turns a callback's exception into a warning; SystemExit stops the sweep
            raise SystemExit(2) from e

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        report = sweep_report(sweep_dir)
        (sweep_dir / "sweep_summary.json").write_text(json.dumps(report, indent=2) + "\n")
        for j in report["jobs"]:
            extra = (f"{j['error']} (log: {j['log']})" if "error" in j else
                     f"log: {j['log']}" if "log" in j else
                     f"eval/return_mean={j.get('eval/return_mean')}")
            print(f"[{j['status']:>10}] {j['dir']}  {extra}", file=sys.stderr)
        if report["n_failed"]:
            print(f"error: {report['n_failed']} of {report['n_jobs']} sweep jobs did not "
                  f"finish; see {sweep_dir / 'sweep_summary.json'}", file=sys.stderr)
            # Hydra turns a callback's exception into a warning; SystemExit gets through,
            # so the sweep's exit status says that something failed.
            raise SystemExit(1)
