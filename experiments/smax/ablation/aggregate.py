"""The SMAX ablation table: experiments/credit_assignment/aggregate.py on SMAX runs.

    python experiments/smax/ablation/aggregate.py [RUN_DIR ...] \
        [--previous results.json] [--out experiments/smax/ablation] [--threshold 0.8]

Every directory under a RUN_DIR holding ``.hydra/config.yaml`` is a run (a Hydra
multirun sweep directory, or single runs' directories). The credit-assignment
aggregation does the reading, grouping, 95% confidence intervals and learning curves;
here the success metric is SMAX's win flag (``eval/success_rate`` = greedy test win
rate), the box-pushing column (push share) is dropped, and a per-run table is added
(with one seed per algorithm a CI does not exist, so the runs themselves are listed).
``--previous FILE`` merges the per-run records of an earlier ``results.json`` whose run
directories are gone (the credit-assignment ``merge_previous``: a run found on disk
replaces the earlier record of the same experiment, algorithm and seed).

Writes ``<out>/results.md``, ``<out>/results.json`` and ``<out>/curves_<experiment>.png``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
from pathlib import Path
from typing import Any

_CA = Path(__file__).resolve().parents[2] / "credit_assignment" / "aggregate.py"
_spec = importlib.util.spec_from_file_location("credit_assignment_aggregate", _CA)
ca = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ca)

PUSH = "lazier robot's push share"


def per_run_rows(algos: dict[str, list[dict[str, Any]]], threshold: float) -> list[dict[str, str]]:
    rows = []
    for algo in sorted(algos, key=ca._algo_key):
        for r in algos[algo]:
            curve = " ".join(f"{s / 1e6:.1f}M:{w:.2f}" for s, w, _ in r["curve"])
            steps = r["steps_to_threshold"]
            rows.append({
                "algorithm": algo, "seed": str(r["seed"]),
                "env steps": f"{r['env_steps'] / 1e6:.2f}M",
                "final win rate": f"{r['success']:.3f}",
                f"steps to {threshold:.0%}": "not reached" if steps is None
                else f"{steps / 1e6:.2f}M",
                "wall time": "n/a" if r.get("wall_time_s") is None
                else f"{r['wall_time_s'] / 60:.0f} min",
                "greedy win rate at each evaluation": curve,
            })
    return rows


def welch_diff(xs: list[float], ys: list[float]) -> tuple[float, float] | None:
    """(mean(xs) - mean(ys), 95% CI half-width by Welch's t with the
    Welch-Satterthwaite degrees of freedom, rounded down); None below 2 values a side."""
    if len(xs) < 2 or len(ys) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    vx = sum((x - mx) ** 2 for x in xs) / (len(xs) - 1) / len(xs)
    vy = sum((y - my) ** 2 for y in ys) / (len(ys) - 1) / len(ys)
    if vx + vy == 0.0:
        return mx - my, 0.0
    df = (vx + vy) ** 2 / (vx ** 2 / (len(xs) - 1) + vy ** 2 / (len(ys) - 1))
    return mx - my, ca.t975(max(1, int(df))) * math.sqrt(vx + vy)


def versus_coma(algos: dict[str, list[dict[str, Any]]]) -> list[dict[str, str]]:
    """Does COMA beat each other algorithm? Difference of final win rates (COMA minus
    the other) with its 95% CI; the verdict says whether the CI excludes 0."""
    coma = [r["success"] for r in algos.get("coma", [])]
    rows = []
    for algo in sorted(algos, key=ca._algo_key):
        if algo == "coma":
            continue
        other = [r["success"] for r in algos[algo]]
        d = welch_diff(coma, other)
        if d is None:
            verdict, cell = "too few seeds (need 2 a side)", "n/a"
        else:
            m, h = d
            cell = f"{m:+.3f} ± {h:.3f}"
            verdict = ("COMA ahead" if m - h > 0 else f"{algo} ahead" if m + h < 0
                       else "no difference shown (CI contains 0)")
        rows.append({"COMA vs": algo, "seeds (coma / other)": f"{len(coma)} / {len(other)}",
                     "final win rate, COMA minus other": cell, "reading": verdict})
    return rows


def merged_note(runs: list[dict[str, Any]]) -> str:
    n = sum(1 for r in runs if "merged_from" in r)
    return f"; {n} of them merged from an earlier results.json" if n else ""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dirs", nargs="*", type=Path, help="run or sweep directories")
    p.add_argument("--previous", type=Path, default=None,
                   help="an earlier results.json whose runs to keep")
    p.add_argument("--previous-produced", default="unknown",
                   help="the date for --previous records that carry none")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    p.add_argument("--threshold", type=float, default=0.8, help="win rate to reach")
    a = p.parse_args(argv)
    if not a.run_dirs and a.previous is None:
        p.error("give at least one run directory or --previous")
    runs = ca.find_runs(a.run_dirs, a.threshold)
    if a.previous is not None:
        runs = ca.merge_previous(runs, a.previous, a.threshold, a.previous_produced)
    grouped = ca.group(runs)
    a.out.mkdir(parents=True, exist_ok=True)
    unfinished = [r["dir"] for r in runs if not r["finished"]]
    parts = ["# SMAX ablation results\n",
             f"Generated by `experiments/smax/ablation/aggregate.py` from {len(runs)} run "
             f"directories ({len(runs) - len(unfinished)} finished"
             f"{merged_note(runs)}). \"success\" is the greedy "
             "test win rate of the final evaluation (one episode per eval env); mean ± 95% "
             "CI half-width over seeds (t-distribution), n/a with one seed.\n"]
    tables: dict[str, Any] = {}
    for name in sorted(grouped):
        rows = [{k: v for k, v in r.items() if k != PUSH}
                for r in ca.table(grouped[name], a.threshold)]
        per_run = per_run_rows(grouped[name], a.threshold)
        vs = versus_coma(grouped[name])
        tables[name] = {"algorithms": rows, "runs": per_run, "versus_coma": vs}
        png = a.out / f"curves_{name}.png"
        ca.curves(name, grouped[name], png)
        parts += [f"## {name}\n", ca.markdown(rows),
                  "Does COMA beat the others? (Welch's t, 95% CI of the difference):\n",
                  ca.markdown(vs) if vs else "(no other algorithm)\n",
                  "Runs:\n", ca.markdown(per_run), f"![learning curves]({png.name})\n"]
    if unfinished:
        parts += ["Unfinished or failed runs (not in the tables):\n",
                  "".join(f"- `{d}`\n" for d in unfinished)]
    (a.out / "results.md").write_text("\n".join(parts))
    (a.out / "results.json").write_text(json.dumps(
        {"threshold": a.threshold, "tables": tables,
         "runs": [{k: v for k, v in r.items() if k not in ("curve", "min_push_share")}
                  | {"curve": r["curve"]} for r in runs]}, indent=1) + "\n")
    print((a.out / "results.md").read_text())
    return 0 if grouped else 1


if __name__ == "__main__":
    sys.exit(main())
