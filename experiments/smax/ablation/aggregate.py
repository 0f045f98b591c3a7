"""The SMAX ablation table (``marl.analysis.report.aggregate_versus``).

    python experiments/smax/ablation/aggregate.py [RUN_DIR ...] \
        [--previous results.json] [--out experiments/smax/ablation] [--threshold 0.8]

Every directory under a RUN_DIR holding ``.hydra/config.yaml`` is a run. Success is
SMAX's win flag (``eval/success_rate`` = greedy test win rate); the rows are whatever
algorithms the runs hold; next to the per-algorithm table, every run, and COMA against
each other algorithm by the 95% bootstrap interval of the difference of mean final win
rates and the probability of improvement (``marl.analysis.reliable``, as ``python -m
marl.report`` computes them).
``--previous`` merges an earlier ``results.json`` (a run on disk replaces the record of
the same experiment, algorithm and seed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from marl.analysis.report import aggregate_versus
from marl.analysis.runs import add_previous_args


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dirs", nargs="*", type=Path, help="run or sweep directories")
    add_previous_args(p)
    p.add_argument("--out", type=Path, required=True,
                   help="where the results go (the committed page: experiments/smax/ablation)")
    p.add_argument("--threshold", type=float, default=0.8, help="win rate to reach")
    a = p.parse_args(argv)
    if not a.run_dirs and a.previous is None:
        p.error("give at least one run directory or --previous")
    try:
        result = aggregate_versus(a.run_dirs, a.out, a.threshold, a.previous, a.previous_produced,
                                  script="experiments/smax/ablation/aggregate.py")
    except (ValueError, OSError) as e:
        p.exit(2, f"error: {e}\n")
    print((a.out / "results.md").read_text())
    return 0 if result["tables"] else 1


if __name__ == "__main__":
    sys.exit(main())
