"""Hydra callback that reports a multirun: which jobs finished, which failed.

Registered in ``conf/config.yaml`` (``hydra.callbacks.sweep_summary``). After the last
job it writes ``<sweep dir>/sweep_summary.json`` and prints one line per job; if any job
failed (its directory holds ``failed.json``, or no ``summary.json``) the sweep exits with
status 1 after every job has run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def sweep_report(sweep_dir: Path) -> dict[str, Any]:
    """Status of every job directory (one holding ``.hydra/``) under ``sweep_dir``."""
    jobs = []
    for d in sorted(p.parent for p in sweep_dir.rglob(".hydra")):
        if (d / "failed.json").exists():
            err = json.loads((d / "failed.json").read_text())["error"]
            jobs.append({"dir": str(d), "status": "failed", "error": err})
        elif (d / "summary.json").exists():
            s = json.loads((d / "summary.json").read_text())
            jobs.append({"dir": str(d), "status": "ok",
                         "eval/return_mean": s.get("eval/return_mean"),
                         "eval/success_rate": s.get("eval/success_rate")})
        else:
            jobs.append({"dir": str(d), "status": "incomplete"})
    failed = [j for j in jobs if j["status"] != "ok"]
    return {"jobs": jobs, "n_jobs": len(jobs), "n_failed": len(failed)}


class SweepSummary(Callback):
    """Write and print the sweep report; fail the sweep if a job failed."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        report = sweep_report(sweep_dir)
        (sweep_dir / "sweep_summary.json").write_text(json.dumps(report, indent=2) + "\n")
        for j in report["jobs"]:
            extra = j.get("error") or f"eval/return_mean={j.get('eval/return_mean')}"
            print(f"[{j['status']:>10}] {j['dir']}  {extra}", file=sys.stderr)
        if report["n_failed"]:
            print(f"error: {report['n_failed']} of {report['n_jobs']} sweep jobs did not "
                  f"finish; see {sweep_dir / 'sweep_summary.json'}", file=sys.stderr)
            # Hydra turns a callback's exception into a warning; SystemExit gets through,
            # so the sweep's exit status says that something failed.
            raise SystemExit(1)
