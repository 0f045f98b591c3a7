"""How a trained box-pushing policy fails (``marl.analysis.failures``): one table row per
run directory.

    python experiments/credit_assignment/failures.py RUN_DIR [RUN_DIR ...] \
        [--episodes 2000] [--seed 123]

Each run's newest checkpoint plays ``--episodes`` greedy episodes, one per env, through
``marl.core.runner.evaluate``. The row: greedy success, the lost episodes, the share of
their steps of each kind (conflict, into wall, blocked, other push, no push), the
policy's confidence (mean largest action probability; none for a value-decomposition
run) in lost / won episodes, a central V-critic's mean V(s_t) in lost / won episodes,
the share of lost (and of all) episodes whose box started off the hole's row and column,
and the box start cell lost most often.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from marl.analysis.failures import KINDS, analyse


def row(d: Path, r: dict) -> str:
    shares = " | ".join(f"{r['step_share'][k]:.2f}" for k in KINDS)
    cell, lost, started = r["worst_box_start"]
    return (f"| {d} | {r['success']:.3f} | {r['failed']} | {shares} | "
            f"{r['confidence_failed']:.3f} / {r['confidence_won']:.3f} | "
            f"{r['value_failed']:.3f} / {r['value_won']:.3f} | "
            f"{r['diagonal_start_failed']:.2f} / {r['diagonal_start_all']:.2f} | "
            f"{cell} {lost} / {started} |")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dirs", nargs="+", type=Path)
    p.add_argument("--episodes", type=int, default=2000)
    p.add_argument("--seed", type=int, default=123)
    args = p.parse_args(argv)
    if args.episodes < 1:
        p.error(f"--episodes {args.episodes}: must be >= 1")
    torch.set_num_threads(1)
    print("| run | greedy success | failed | " + " | ".join(KINDS)
          + " | confidence failed / won | central V failed / won | diagonal start failed / all "
          "| box start lost most often (lost / started there) |")
    print("|---" * (7 + len(KINDS)) + "|")
    for d in args.run_dirs:
        try:
            print(row(d, analyse(d, args.episodes, args.seed)), flush=True)
        except (ValueError, OSError) as e:
            p.exit(2, f"error: {e}\n")


if __name__ == "__main__":
    main()
