"""Final greedy success, env steps to the first evaluation at >= 95%, and wall time of
box-pushing runs, as a Markdown table and a JSON file.

    python experiments/optimism/boxpush_summary.py runs/optimism/coma_boxpush_optimistic_s* \
        --json experiments/optimism/boxpush_results.json

Reads each run directory's ``metrics.jsonl`` (``eval/success_rate`` rows) and
``summary.json``; a run without ``summary.json`` (still running) is skipped.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from marl.analysis.runs import eval_curve


def summarise(run: Path) -> dict:
    evals = list(zip(*eval_curve(run / "metrics.jsonl", "eval/success_rate"), strict=True))
    summary = json.loads((run / "summary.json").read_text())
    return {
        "run": run.name, "seed": summary["seed"], "env_steps": summary["env_steps"],
        "final_success": summary["eval/success_rate"],
        "steps_to_95": next((s for s, v in evals if v >= 0.95), None),
        "evals": evals, "wall_time_s": summary["wall_time_s"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    out = [summarise(r) for r in args.runs if (r / "summary.json").exists()]
    print("| run | final greedy success | env steps to 95% | env steps | wall time |")
    print("|---|---|---|---|---|")
    for r in out:
        to95 = "not reached" if r["steps_to_95"] is None else f"{r['steps_to_95']:,}"
        print(f"| {r['run']} | {r['final_success']:.3f} | {to95} | {r['env_steps']:,} | "
              f"{r['wall_time_s']:.0f} s |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
