"""Results tables of grouped runs (:func:`marl.analysis.runs.group`) and their Markdown.

Rows are whatever algorithms the runs hold: the COMA paper's order first
(:data:`ALGO_ORDER`), any other algorithm after them by name. Every interval is a 95%
bootstrap percentile interval over the row's seeds, computed by
:mod:`marl.analysis.reliable` exactly as ``python -m marl.report`` computes it (5,000
resamples, seed 0): the same numbers from the page's script and from the report.
"""

from __future__ import annotations

from typing import Any

from marl.analysis.reliable import difference_ci, fmt_ci, iqm_ci, mean_ci, prob_improvement
from marl.analysis.runs import Record

ALGO_ORDER = ("coma", "central_qv", "central_v", "iac_q", "iac_v", "reinforce")
PUSH_SHARE = "lazier robot's push share"


def algo_key(a: str) -> tuple[int, str]:
    """Sort key of an algorithm name: :data:`ALGO_ORDER` first, then by name."""
    return (ALGO_ORDER.index(a) if a in ALGO_ORDER else len(ALGO_ORDER), a)


def fmt_steps(xs: list[float], n: int) -> str:
    """Env steps to a threshold over the ``len(xs)`` of ``n`` seeds that reached it."""
    if not xs:
        return f"not reached (0/{n})"
    return f"{fmt_ci(mean_ci(xs), 2, 1e6, 'M')} ({len(xs)}/{n})"


def table(algos: dict[str, list[Record]], threshold: float, push_share: bool = True
          ) -> list[dict[str, str]]:
    """One row per algorithm: seeds, final success (mean and IQM with 95% bootstrap CIs),
    final return (mean, CI), env steps to ``threshold`` success, the lazier robot's push
    share (``push_share``: box pushing's column) and the dates the runs were produced."""
    rows = []
    for algo in sorted(algos, key=algo_key):
        rs = algos[algo]
        reached = [r["steps_to_threshold"] for r in rs if r["steps_to_threshold"] is not None]
        success = [r["success"] for r in rs]
        row = {
            "algorithm": algo,
            "seeds": str(len(rs)),
            "final success": fmt_ci(mean_ci(success)),
            "final success, IQM": fmt_ci(iqm_ci(success)),
            "final return": fmt_ci(mean_ci([r["return"] for r in rs])),
            f"env steps to {threshold:.0%} success": fmt_steps(reached, len(rs)),
        }
        if push_share:
            shares = [r["min_push_share"] for r in rs if r.get("min_push_share") is not None]
            row[PUSH_SHARE] = fmt_ci(mean_ci(shares), digits=2)
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


def _verdict(ref: str, algo: str, d: tuple[float, float, float] | None) -> tuple[str, str]:
    if d is None:
        return "n/a", "too few seeds (need 2 a side)"
    label = "COMA" if ref == "coma" else ref
    verdict = (f"{label} ahead" if d[1] > 0 else f"{algo} ahead" if d[2] < 0
               else "no difference shown (CI contains 0)")
    return fmt_ci(d, sign=True), verdict


def versus(algos: dict[str, list[Record]], ref: str = "coma") -> list[dict[str, str]]:
    """Does ``ref`` beat each other algorithm? The difference of mean final win rates
    (``ref`` minus the other) with its 95% bootstrap CI (each side resampled on its own,
    :func:`marl.analysis.reliable.difference_ci`), the reading (does the CI exclude 0?),
    and the probability of improvement ``P(ref > other)`` with its CI."""
    label = "COMA" if ref == "coma" else ref
    mine = [r["success"] for r in algos.get(ref, [])]
    rows = []
    for algo in sorted(algos, key=algo_key):
        if algo == ref:
            continue
        other = [r["success"] for r in algos[algo]]
        cell, verdict = _verdict(ref, algo, difference_ci(mine, other))
        poi = prob_improvement([mine], [other]) if mine and other else None
        rows.append({f"{label} vs": algo, f"seeds ({ref} / other)": f"{len(mine)} / {len(other)}",
                     f"final win rate, {label} minus other": cell, "reading": verdict,
                     f"P({label} > other)": fmt_ci(poi, digits=2)})
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of ``rows`` (the first row's keys are the columns)."""
    if not rows:
        return "(no finished runs)\n"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"
