"""One report over runs and sweeps: ``python -m marl.report DIR... --out OUT``.

Every run below the given directories (a directory with ``.hydra/config.yaml``) is read
back: its composed config, its final evaluation (``summary.json``) and its evaluation
curve (``metrics.jsonl``). Runs are grouped by their composed config minus the seed,
Hydra's own keys, paths and logging (:data:`IGNORED`); a group is a row. For each metric
(final ``eval/success_rate`` and ``eval/return_mean`` unless ``--metric`` says) a row
gets the mean and the interquartile mean, each with a 95% stratified-bootstrap interval,
and every pair of rows the probability of improvement (:mod:`marl.analysis.reliable`).
``--pool KEY`` pools rows over a key (for example ``env``, every map of an algorithm):
the key's values become the strata of the bootstrap.

It writes ``report.md``, ``report.json`` and ``curves_<metric>.png`` (mean over seeds,
bootstrap band clipped to the metric's range), only under ``--out``: an ``--out`` in the
marl package, an ``experiments/`` folder or inside a directory it reads is refused
unless ``--force``. No run found: exit 2, one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from marl.analysis import reliable
from marl.io.files import read_jsonl

IGNORED = ("seed", "hydra.", "resume", "init_from", "logger.", "checkpoint.", "plugin_path",
           "train.torch_threads", "requires", "device")
"""Config keys (prefixes) that do not make runs different: they never split a group."""
RATE_SUFFIXES = ("success_rate", "win_rate", "success")
"""Metrics in [0, 1]: their bands are clipped there."""


class ReportError(ValueError):
    """Bad input: one line, exit 2."""


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: json.dumps(tree, sort_keys=True)}


def _ignored(key: str, pool: list[str]) -> bool:
    """``key`` is one of ``IGNORED`` or ``pool``, or below one (``a.`` is a prefix)."""
    return any(key.startswith(p) if p.endswith(".") else key == p or key.startswith(p + ".")
               for p in (*IGNORED, *pool))


def read_runs(dirs: list[Path]) -> list[dict[str, Any]]:
    """Every run below ``dirs``: its flat config, final metrics (None if unfinished)
    and metrics rows."""
    runs = []
    for d in dirs:
        if not d.is_dir():
            raise ReportError(f"{d} is not a directory")
        for cfg in sorted(d.glob("**/.hydra/config.yaml")):
            run_dir = cfg.parent.parent
            summary = run_dir / "summary.json"
            metrics = run_dir / "metrics.jsonl"
            runs.append({
                "dir": str(run_dir), "config": _flat(yaml.safe_load(cfg.read_text()) or {}),
                "final": json.loads(summary.read_text()) if summary.is_file() else None,
                "rows": read_jsonl(metrics) if metrics.is_file() else [],
            })
    if not runs:
        raise ReportError(f"no run under {', '.join(map(str, dirs))} (a run directory "
                          "holds .hydra/config.yaml)")
    return runs


def group_runs(runs: list[dict[str, Any]], pool: list[str]) -> dict[str, dict[str, Any]]:
    """label -> ``{"runs", "key"}``. Runs group by the config keys every run has (a run
    of an older marl lacks the newer options: they do not split it off), minus
    :data:`IGNORED` and ``pool``. A label is the run name, with the keys that tell
    apart the groups of the same name."""
    shared = set.intersection(*(set(r["config"]) for r in runs))
    keys = sorted(k for k in shared if not _ignored(k, pool))
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        groups[tuple(r["config"][k] for k in keys)].append(r)
    by_name: dict[str, list[dict[str, str]]] = defaultdict(list)
    for values in groups:
        d = dict(zip(keys, values, strict=True))
        by_name[d.get("name", '"runs"')].append(d)
    out = {}
    for values, members in groups.items():
        d = dict(zip(keys, values, strict=True))
        same = by_name[d.get("name", '"runs"')]
        differ = [k for k in keys if len({o[k] for o in same}) > 1]
        label = str(json.loads(d.get("name", '"runs"')))
        if differ:
            label += " [" + ", ".join(f"{k}={json.loads(d[k])}" for k in differ) + "]"
        out[label] = {"runs": members, "key": d}
    return dict(sorted(out.items()))


def _stratum(run: dict[str, Any], pool: list[str]) -> str:
    return json.dumps({k: v for k, v in run["config"].items()
                       if any(k == p or k.startswith(p + ".") for p in pool)}, sort_keys=True)


def _strata(runs: list[dict[str, Any]], metric: str, pool: list[str]) -> dict[str, np.ndarray]:
    by: dict[str, list[float]] = defaultdict(list)
    for r in runs:
        v = (r["final"] or {}).get(metric)
        if v is not None:
            by[_stratum(r, pool)].append(float(v))
    return {k: np.array(v) for k, v in sorted(by.items())}


def metric_table(groups: dict[str, dict[str, Any]], metric: str, pool: list[str]
                 ) -> dict[str, Any]:
    """Per row: n, mean and IQM with intervals; per pair: P(row > other) on common tasks."""
    strata = {label: _strata(g["runs"], metric, pool) for label, g in groups.items()}
    rows = {}
    for label, s in strata.items():
        if not s:
            continue
        parts = list(s.values())
        rows[label] = {"n": int(sum(len(p) for p in parts)), "tasks": len(parts),
                       "mean": reliable.stratified_ci(parts, reliable.mean),
                       "iqm": reliable.stratified_ci(parts, reliable.iqm)}
    poi = {}  # each pair once: P(b > a) = 1 - P(a > b)
    labels = list(rows)
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            common = sorted(set(strata[a]) & set(strata[b]))
            if common:
                poi[f"{a} > {b}"] = reliable.prob_improvement(
                    [strata[a][k] for k in common], [strata[b][k] for k in common])
    return {"rows": rows, "prob_improvement": poi}


def _fmt(ci: tuple[float, float, float]) -> str:
    return reliable.fmt_ci(ci)


def markdown(tables: dict[str, Any], argv: list[str], n_runs: int, skipped: list[str]) -> str:
    lines = ["# Report\n", f"`python -m marl.report {' '.join(argv)}`: {n_runs} runs; "
             "final evaluation per run; 95% stratified-bootstrap percentile intervals.\n"]
    for metric, t in tables.items():
        lines += [f"## {metric}\n", "| row | runs | mean [95% CI] | IQM [95% CI] |",
                  "|---|---|---|---|"]
        lines += [f"| {label} | {r['n']} | {_fmt(r['mean'])} | {_fmt(r['iqm'])} |"
                  for label, r in t["rows"].items()]
        if t["prob_improvement"]:
            lines += ["", "| P(X > Y) [95% CI] | value |", "|---|---|"]
            lines += [f"| {pair} | {_fmt(v)} |" for pair, v in t["prob_improvement"].items()]
        lines.append("")
    if skipped:
        lines += ["Unfinished runs (no final evaluation, left out):\n"]
        lines += [f"- `{d}`" for d in skipped]
    return "\n".join(lines) + "\n"


def draw_curves(groups: dict[str, dict[str, Any]], metric: str, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bounds = (0.0, 1.0) if metric.endswith(RATE_SUFFIXES) else None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, g in groups.items():
        curves = [{r["env_steps"]: r[metric] for r in run["rows"] if r.get(metric) is not None}
                  for run in g["runs"]]
        steps = sorted(set().union(*curves))
        if not steps:
            continue
        values = np.array([[c.get(s, np.nan) for s in steps] for c in curves], float)
        mid, low, high = reliable.curve_band(values, bounds)
        (line,) = ax.plot(steps, mid, lw=1.6, label=f"{label} (n={len(curves)})")
        ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.18, lw=0)
    ax.set(xlabel="env steps", ylabel=metric, title=f"{metric}: mean, 95% bootstrap band")
    if bounds is not None:
        ax.set_ylim(bounds[0] - 0.02, bounds[1] + 0.02)
    ax.legend(fontsize=7)
    path = out / f"curves_{metric.replace('/', '_')}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def check_out(out: Path, inputs: list[Path], force: bool) -> None:
    """Refuse an ``--out`` that would write into the package, experiments/ or what it reads."""
    out = out.resolve()
    package = Path(__file__).resolve().parent
    guarded = [("the marl package", package)]
    guarded += [(f"the directory it reads ({d})", d.resolve()) for d in inputs]
    for what, root in guarded:
        if not force and (out == root or root in out.parents):
            raise ReportError(f"--out {out} is inside {what}: choose another --out, or "
                              "pass --force")
    if not force and "experiments" in out.parts:
        raise ReportError(f"--out {out} is inside an experiments/ folder (committed "
                          "results): choose another --out, or pass --force")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m marl.report", description=__doc__.split("\n")[0])
    p.add_argument("dirs", nargs="+", type=Path, help="run or sweep directories")
    p.add_argument("--out", type=Path, required=True, help="where report.* and curves go")
    p.add_argument("--metric", action="append", default=None,
                   help="a final metric (repeatable); default eval/success_rate and "
                        "eval/return_mean, those the runs have")
    p.add_argument("--pool", action="append", default=[],
                   help="pool rows over this config key (its values become the strata)")
    p.add_argument("--force", action="store_true", help="allow any --out")
    args = p.parse_args(argv)
    try:
        check_out(args.out, args.dirs, args.force)
        runs = read_runs(args.dirs)
        finished = [r for r in runs if r["final"] is not None]
        if not finished:
            raise ReportError(f"none of the {len(runs)} runs found has finished "
                              "(no summary.json)")
        metrics = args.metric or [m for m in ("eval/success_rate", "eval/return_mean")
                                  if any(m in r["final"] for r in finished)]
        groups = group_runs(finished, args.pool)
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    tables = {m: metric_table(groups, m, args.pool) for m in metrics}
    args.out.mkdir(parents=True, exist_ok=True)
    skipped = [r["dir"] for r in runs if r["final"] is None]
    text = markdown(tables, argv, len(finished), skipped)
    (args.out / "report.md").write_text(text)
    (args.out / "report.json").write_text(json.dumps(
        {"tables": tables, "groups": {k: [r["dir"] for r in g["runs"]]
                                      for k, g in groups.items()},
         "unfinished": skipped}, indent=1))
    for m in metrics:
        draw_curves(groups, m, args.out)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
