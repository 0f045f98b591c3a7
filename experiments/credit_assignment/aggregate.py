"""Aggregate box-pushing sweeps: a Markdown table per experiment and learning curves
with 95% CIs (``marl.analysis.report.aggregate``).

    python experiments/credit_assignment/aggregate.py [SWEEP_DIR ...] \
        [--previous results.json [--previous-produced DATE]] \
        [--out experiments/credit_assignment] [--threshold 0.9]

Every directory under a SWEEP_DIR holding ``.hydra/config.yaml`` is a run; it counts once
it has written ``summary.json``. Rows: experiment (``name``) x algorithm (``algo.name``),
seeds the replicates; final greedy success (mean and IQM) and return (mean), each with
its 95% stratified bootstrap CI (``marl.analysis.reliable``, the numbers ``python -m
marl.report`` gives), env steps to ``--threshold`` success, the lazier robot's push share.
Regenerate the committed page's tables from its record alone (the runs are gone)::

    python experiments/credit_assignment/aggregate.py \
        --previous experiments/credit_assignment/results.json --out /tmp/ca

``--previous`` merges the records of an earlier ``results.json`` whose run directories
are gone (a run on disk replaces the record of the same experiment, algorithm and seed).
The page's curves and results.md header (how many directories were read when the runs
existed) are committed as first written; a regeneration from the record alone changes
only the tables.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from marl.analysis.report import aggregate
from marl.analysis.runs import add_previous_args


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweep_dirs", nargs="*", type=Path, help="multirun sweep directories")
    add_previous_args(p)
    p.add_argument("--out", type=Path, required=True,
                   help="where results.md, results.json and curves_*.png go (this page's "
                        "committed results: experiments/credit_assignment)")
    p.add_argument("--threshold", type=float, default=0.9, help="success rate to reach")
    a = p.parse_args(argv)
    if not a.sweep_dirs and a.previous is None:
        p.error("give at least one sweep directory or --previous")
    try:
        result = aggregate(a.sweep_dirs, a.out, a.threshold, a.previous, a.previous_produced)
    except (ValueError, OSError) as e:
        p.exit(2, f"error: {e}\n")
    print((a.out / "results.md").read_text())
    return 0 if result["tables"] else 1


if __name__ == "__main__":
    sys.exit(main())
