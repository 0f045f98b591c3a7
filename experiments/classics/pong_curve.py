"""Pong learning curves: greedy evaluation return (and training return) of each run,
against env steps and against wall time, in one PNG.

    python experiments/classics/pong_curve.py /work/runs/ppo_pong_s0 outputs/classics_pong \
        --out experiments/classics/pong.png

Every run directory at or below the given paths (a ``metrics.jsonl``) is one line,
labelled by its folder name. Evaluations are the ``eval/return_mean`` rows (greedy, the
experiment's ``train.eval_episodes`` full games each).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from marl.io.plots import plt, read_metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=Path("pong.png"))
    args = ap.parse_args()
    runs = sorted({m.parent for root in args.roots for m in root.rglob("metrics.jsonl")})
    if not runs:
        raise SystemExit(f"no metrics.jsonl below {[str(r) for r in args.roots]}")
    fig, (ax_s, ax_t) = plt.subplots(1, 2, figsize=(12, 4.2))
    for run in runs:
        rows = read_metrics(run / "metrics.jsonl")
        ev = [r for r in rows if r.get("eval/return_mean") is not None]
        tr = [r for r in rows if r.get("train/return") is not None]
        for ax, x in ((ax_s, "env_steps"), (ax_t, "perf/wall_time_s")):
            scale = 1 / 3600 if x == "perf/wall_time_s" else 1.0
            line, = ax.plot([r[x] * scale for r in ev], [r["eval/return_mean"] for r in ev],
                            marker="o", ms=4, label=f"{run.name} greedy eval")
            ax.plot([r[x] * scale for r in tr], [r["train/return"] for r in tr], alpha=0.35,
                    color=line.get_color(), label=f"{run.name} train")
    ax_s.set(xlabel="env steps", ylabel="episode return (21 points)")
    ax_t.set(xlabel="wall time (h)", ylabel="episode return (21 points)")
    for ax in (ax_s, ax_t):
        ax.axhline(0.0, color="grey", lw=0.8, ls="--")
        ax.set_ylim(-21.5, 21.5)
        ax.grid(alpha=0.3)
    ax_s.legend(fontsize=7)
    fig.suptitle("Pong: greedy evaluation (markers) and training return (lines)")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out} ({len(runs)} runs)")


if __name__ == "__main__":
    main()
