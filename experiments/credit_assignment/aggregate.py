"""Aggregate a sweep: a Markdown table per experiment and learning curves with 95% CIs.

    python experiments/credit_assignment/aggregate.py [SWEEP_DIR ...] \
        [--previous results.json] [--out experiments/credit_assignment] [--threshold 0.9]

Every directory under a SWEEP_DIR holding ``.hydra/config.yaml`` is a run; a run counts
once it has written ``summary.json`` (unfinished or failed runs are listed, not used).
Runs are grouped by experiment (``name``) and algorithm (``algo.name``); seeds are the
replicates. For each group:

* final greedy success rate and return (``summary.json``: the last evaluation), as mean
  +- the half-width of a 95% confidence interval over seeds, t-distribution with n - 1
  degrees of freedom;
* env steps to ``--threshold`` success: the first evaluation (``eval/success_rate`` in
  ``metrics.jsonl``) at or above it, per seed; mean +- CI over the seeds that got there,
  with how many did; "not reached" when none did;
* the lazier robot's share of the successful pushes in the final evaluation
  (``eval/credit/<agent>/push_share``, the smaller of the agents'): 0.5 = equal work,
  0 = one robot never moved the box.

``--previous FILE`` merges the per-run records of an earlier ``results.json`` whose run
directories are no longer on disk: a run found under a SWEEP_DIR replaces a previous
record of the same experiment, algorithm and seed, so aggregating again over the merged
file is idempotent. Every run carries ``produced``: the UTC date its ``summary.json`` was
written, kept from the earlier file for merged records; the tables name the dates of each
row's runs. Learning curves are stored in ``results.json`` (``curve``) from now on;
records merged from a file that has none are left out of the plots (the plot says so).

Writes ``<out>/results.md`` (tables), ``<out>/results.json`` (per-run numbers) and
``<out>/curves_<experiment>.png`` (eval success and return vs env steps, mean and 95% CI
band per algorithm).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

# Two-sided 95% quantiles of Student's t, t_{0.975, df}, df = 1..30; larger df: 1.96.
T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
        2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
        2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)

ALGO_ORDER = ("coma", "central_qv", "central_v", "iac_q", "iac_v", "reinforce")


def t975(df: int) -> float:
    return T975[df - 1] if df <= len(T975) else 1.96


def mean_ci(xs: list[float]) -> tuple[float, float]:
    """(mean, 95% CI half-width); half-width is nan for fewer than 2 values."""
    n = len(xs)
    if n == 0:
        return math.nan, math.nan
    m = sum(xs) / n
    if n < 2:
        return m, math.nan
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    return m, t975(n - 1) * sd / math.sqrt(n)


def read_run(run_dir: Path, threshold: float) -> dict[str, Any]:
    """One run's config, final summary and eval curve."""
    cfg = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    run: dict[str, Any] = {
        "dir": str(run_dir), "name": cfg.get("name"), "algo": cfg["algo"]["name"],
        "seed": cfg.get("seed"), "finished": False, "curve": [],
    }
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line being written right now
                continue
            if row.get("eval/success_rate") is not None:
                run["curve"].append((row["env_steps"], row["eval/success_rate"],
                                     row.get("eval/return_mean")))
    run["steps_to_threshold"] = next(
        (s for s, succ, _ in run["curve"] if succ >= threshold), None)
    summary = run_dir / "summary.json"
    if summary.is_file():
        s = json.loads(summary.read_text())
        run["finished"] = True
        run["env_steps"] = s.get("env_steps")
        run["success"] = s.get("eval/success_rate")
        run["return"] = s.get("eval/return_mean")
        shares = [v for k, v in s.items()
                  if k.startswith("eval/credit/") and k.endswith("/push_share")]
        run["min_push_share"] = min(shares) if shares else (0.0 if run["success"] else None)
        run["wall_time_s"] = s.get("wall_time_s")
        run["produced"] = datetime.fromtimestamp(summary.stat().st_mtime, timezone.utc) \
            .strftime("%Y-%m-%d")
    return run


def merge_previous(runs: list[dict[str, Any]], previous: Path, threshold: float,
                   produced: str = "unknown") -> list[dict[str, Any]]:
    """``runs`` plus the finished records of an earlier ``results.json`` that no run in
    ``runs`` replaces (same experiment, algorithm and seed). The earlier file must have
    used the same threshold (its steps-to-threshold are taken as they are). Records
    without a ``produced`` date get ``produced``."""
    data = json.loads(previous.read_text())
    if data.get("threshold") != threshold:
        raise SystemExit(f"error: {previous} was aggregated at threshold "
                         f"{data.get('threshold')}, not {threshold}: its steps to threshold "
                         "cannot be merged")
    have = {(r["name"], r["algo"], r["seed"]) for r in runs}
    kept = []
    for r in data["runs"]:
        if r.get("finished") and (r["name"], r["algo"], r["seed"]) not in have:
            r = {"curve": [], **r, "merged_from": str(previous)}
            r.setdefault("produced", produced)
            kept.append(r)
    return runs + kept


def collect_runs(sweep_dirs: list[Path], threshold: float, previous: Path | None = None,
                 previous_produced: str = "unknown") -> list[dict[str, Any]]:
    """The runs under ``sweep_dirs`` plus, with ``previous``, the earlier records that no
    run on disk replaces (:func:`merge_previous`)."""
    runs = find_runs(sweep_dirs, threshold)
    if previous is not None:
        runs = merge_previous(runs, previous, threshold, previous_produced)
    return runs


def merged_note(runs: list[dict[str, Any]]) -> str:
    """"; N of them merged from an earlier results.json" for the header, or ""."""
    n = sum(1 for r in runs if "merged_from" in r)
    return f"; {n} of them merged from an earlier results.json" if n else ""


def add_previous_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--previous", type=Path, default=None,
                   help="an earlier results.json whose runs are merged (see above)")
    p.add_argument("--previous-produced", default="unknown",
                   help="'produced' of merged records that have none (e.g. their date)")


def find_runs(sweep_dirs: list[Path], threshold: float) -> list[dict[str, Any]]:
    runs = []
    for d in sweep_dirs:
        if not d.is_dir():
            raise SystemExit(f"error: sweep directory {d} does not exist")
        for cfg in sorted(d.glob("**/.hydra/config.yaml")):
            runs.append(read_run(cfg.parent.parent, threshold))
    return runs


def _fmt(m: float, h: float, digits: int = 3) -> str:
    if math.isnan(m):
        return "n/a"
    return f"{m:.{digits}f}" if math.isnan(h) else f"{m:.{digits}f} ± {h:.{digits}f}"


def _fmt_steps(xs: list[float], n: int) -> str:
    if not xs:
        return f"not reached (0/{n})"
    m, h = mean_ci(xs)
    body = f"{m / 1e6:.2f}M" if math.isnan(h) else f"{m / 1e6:.2f}M ± {h / 1e6:.2f}M"
    return f"{body} ({len(xs)}/{n})"


def _algo_key(a: str) -> tuple[int, str]:
    return (ALGO_ORDER.index(a) if a in ALGO_ORDER else len(ALGO_ORDER), a)


def group(runs: list[dict[str, Any]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """experiment -> algo -> finished runs (sorted by seed)."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        if r["finished"]:
            out[r["name"]][r["algo"]].append(r)
    for algos in out.values():
        for rs in algos.values():
            rs.sort(key=lambda r: r["seed"])
    return out


def table(algos: dict[str, list[dict[str, Any]]], threshold: float) -> list[dict[str, str]]:
    """Rows of the results table of one experiment, one per algorithm."""
    rows = []
    for algo in sorted(algos, key=_algo_key):
        rs = algos[algo]
        reached = [r["steps_to_threshold"] for r in rs if r["steps_to_threshold"] is not None]
        shares = [r["min_push_share"] for r in rs if r.get("min_push_share") is not None]
        rows.append({
            "algorithm": algo,
            "seeds": str(len(rs)),
            "final success": _fmt(*mean_ci([r["success"] for r in rs])),
            "final return": _fmt(*mean_ci([r["return"] for r in rs])),
            f"env steps to {threshold:.0%} success": _fmt_steps(reached, len(rs)),
            "lazier robot's push share": _fmt(*mean_ci(shares), digits=2),
            "runs produced": ", ".join(sorted({r.get("produced", "unknown") for r in rs})),
        })
    return rows


def markdown(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "(no finished runs)\n"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(r[c] for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def curves(name: str, algos: dict[str, list[dict[str, Any]]], out: Path) -> None:
    """Eval success and return vs env steps: mean and 95% CI band over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    no_curve = [a for a in sorted(algos, key=_algo_key) if not any(r["curve"] for r in algos[a])]
    for algo in sorted(algos, key=_algo_key):
        if algo in no_curve:
            continue
        by_step: dict[int, list[tuple[float, float]]] = defaultdict(list)
        for r in algos[algo]:
            for s, succ, ret in r["curve"]:
                by_step[s].append((succ, ret))
        steps = sorted(by_step)
        for ax, i in zip(axes, (0, 1), strict=True):
            stats = [mean_ci([v[i] for v in by_step[s] if v[i] is not None]) for s in steps]
            m = [x[0] for x in stats]
            h = [0.0 if math.isnan(x[1]) else x[1] for x in stats]
            (line,) = ax.plot(steps, m, label=f"{algo} (n={len(algos[algo])})", lw=1.6)
            ax.fill_between(steps, [a - b for a, b in zip(m, h, strict=True)],
                            [a + b for a, b in zip(m, h, strict=True)],
                            color=line.get_color(), alpha=0.18, lw=0)
    axes[0].set(xlabel="env steps", ylabel="greedy eval success rate", ylim=(-0.02, 1.02),
                title=f"{name}: success (mean, 95% CI over seeds)")
    axes[1].set(xlabel="env steps", ylabel="greedy eval return",
                title=f"{name}: return (mean, 95% CI over seeds)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if no_curve:
        fig.text(0.5, 0.005, f"no stored curve (merged records): {', '.join(no_curve)}",
                 ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.03 if no_curve else 0, 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)


def aggregate(sweep_dirs: list[Path], out_dir: Path, threshold: float = 0.9,
              previous: Path | None = None, previous_produced: str = "unknown"
              ) -> dict[str, Any]:
    """Read the sweeps (and ``previous``), write results.md, results.json and the curves;
    return the tables."""
    runs = collect_runs(sweep_dirs, threshold, previous, previous_produced)
    grouped = group(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    unfinished = [r["dir"] for r in runs if not r["finished"]]
    parts = ["# Results\n",
             f"Generated by `aggregate.py` from {len(runs)} run directories "
             f"({len(runs) - len(unfinished)} finished{merged_note(runs)}). "
             "Mean ± 95% CI half-width over seeds (t-distribution); success and return are "
             "the final greedy evaluation.\n"]
    tables: dict[str, list[dict[str, str]]] = {}
    for name in sorted(grouped):
        tables[name] = table(grouped[name], threshold)
        png = out_dir / f"curves_{name}.png"
        curves(name, grouped[name], png)
        parts += [f"## {name}\n", markdown(tables[name]), f"![learning curves]({png.name})\n"]
    if unfinished:
        parts += ["Unfinished or failed runs (not in the tables):\n",
                  "".join(f"- `{d}`\n" for d in unfinished)]
    (out_dir / "results.md").write_text("\n".join(parts))
    (out_dir / "results.json").write_text(json.dumps(
        {"threshold": threshold, "tables": tables,
         "runs": runs}, indent=1) + "\n")
    return {"tables": tables, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweep_dirs", nargs="*", type=Path, help="multirun sweep directories")
    add_previous_args(p)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                   help="where results.md, results.json and curves_*.png go")
    p.add_argument("--threshold", type=float, default=0.9, help="success rate to reach")
    a = p.parse_args(argv)
    if not a.sweep_dirs and a.previous is None:
        p.error("give at least one sweep directory or --previous")
    result = aggregate(a.sweep_dirs, a.out, a.threshold, a.previous, a.previous_produced)
    print((a.out / "results.md").read_text())
    return 0 if result["tables"] else 1


if __name__ == "__main__":
    sys.exit(main())
