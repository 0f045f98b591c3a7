"""Results tables of grouped runs (:func:`marl.analysis.runs.group`) and their Markdown.

Rows are whatever algorithms the runs hold: the COMA paper's order first
(:data:`ALGO_ORDER`), any other algorithm after them by name.
"""

from __future__ import annotations

import math
from typing import Any

from marl.analysis.runs import Record
from marl.analysis.stats import fmt_ci, mean_ci, welch_diff

ALGO_ORDER = ("coma", "central_qv", "central_v", "iac_q", "iac_v", "reinforce")
PUSH_SHARE = "lazier robot's push share"


def algo_key(a: str) -> tuple[int, str]:
    """Sort key of an algorithm name: :data:`ALGO_ORDER` first, then by name."""
    return (ALGO_ORDER.index(a) if a in ALGO_ORDER else len(ALGO_ORDER), a)


def fmt_steps(xs: list[float], n: int) -> str:
    """Env steps to a threshold over the ``len(xs)`` of ``n`` seeds that reached it."""
    if not xs:
        return f"not reached (0/{n})"
    m, h = mean_ci(xs)
    body = f"{m / 1e6:.2f}M" if math.isnan(h) else f"{m / 1e6:.2f}M ± {h / 1e6:.2f}M"
    return f"{body} ({len(xs)}/{n})"


def table(algos: dict[str, list[Record]], threshold: float, push_share: bool = True
          ) -> list[dict[str, str]]:
    """One row per algorithm: seeds, final success and return (mean ± 95% CI), env steps
    to ``threshold`` success, the lazier robot's push share (``push_share``: box pushing's
    column) and the dates the runs were produced."""
    rows = []
    for algo in sorted(algos, key=algo_key):
        rs = algos[algo]
        reached = [r["steps_to_threshold"] for r in rs if r["steps_to_threshold"] is not None]
        row = {
            "algorithm": algo,
            "seeds": str(len(rs)),
            "final success": fmt_ci(*mean_ci([r["success"] for r in rs])),
            "final return": fmt_ci(*mean_ci([r["return"] for r in rs])),
            f"env steps to {threshold:.0%} success": fmt_steps(reached, len(rs)),
        }
        if push_share:
            shares = [r["min_push_share"] for r in rs if r.get("min_push_share") is not None]
            row[PUSH_SHARE] = fmt_ci(*mean_ci(shares), digits=2)
        row["runs produced"] = ", ".join(sorted({r.get("produced", "unknown") for r in rs}))
        rows.append(row)
    return rows


def per_run_rows(algos: dict[str, list[Record]], threshold: float) -> list[dict[str, str]]:
    """One row per run: seed, env steps, final win rate, steps to ``threshold``, wall time
    and the greedy win rate at each evaluation."""
    rows = []
    for algo in sorted(algos, key=algo_key):
        for r in algos[algo]:
            steps = r["steps_to_threshold"]
            rows.append({
                "algorithm": algo, "seed": str(r["seed"]),
                "env steps": f"{r['env_steps'] / 1e6:.2f}M",
                "final win rate": f"{r['success']:.3f}",
                f"steps to {threshold:.0%}": "not reached" if steps is None
                else f"{steps / 1e6:.2f}M",
                "wall time": "n/a" if r.get("wall_time_s") is None
                else f"{r['wall_time_s'] / 60:.0f} min",
                "greedy win rate at each evaluation":
                    " ".join(f"{s / 1e6:.1f}M:{w:.2f}" for s, w, _ in r["curve"]),
            })
    return rows


def _verdict(ref: str, algo: str, d: tuple[float, float] | None) -> tuple[str, str]:
    if d is None:
        return "n/a", "too few seeds (need 2 a side)"
    m, h = d
    label = "COMA" if ref == "coma" else ref
    verdict = (f"{label} ahead" if m - h > 0 else f"{algo} ahead" if m + h < 0
               else "no difference shown (CI contains 0)")
    return f"{m:+.3f} ± {h:.3f}", verdict


def versus(algos: dict[str, list[Record]], ref: str = "coma") -> list[dict[str, str]]:
    """Does ``ref`` beat each other algorithm? The difference of final win rates (``ref``
    minus the other) with Welch's 95% CI; the reading says whether the CI excludes 0."""
    label = "COMA" if ref == "coma" else ref
    mine = [r["success"] for r in algos.get(ref, [])]
    rows = []
    for algo in sorted(algos, key=algo_key):
        if algo == ref:
            continue
        other = [r["success"] for r in algos[algo]]
        cell, verdict = _verdict(ref, algo, welch_diff(mine, other))
        rows.append({f"{label} vs": algo, f"seeds ({ref} / other)": f"{len(mine)} / {len(other)}",
                     f"final win rate, {label} minus other": cell, "reading": verdict})
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of ``rows`` (the first row's keys are the columns)."""
    if not rows:
        return "(no finished runs)\n"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"
