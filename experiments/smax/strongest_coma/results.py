"""The strongest-COMA page's record: final greedy win rates, the table and the curves.

``results.json`` is a list of runs, each ``{label, map, seed, env_steps, final, curve}``
(``final``: the greedy win rate over 128 episodes at the end; ``curve``: ``[[env_steps,
win], ...]`` of the periodic evaluations). Three ways in, one table and one figure out::

    python results.py collect results.json "LABEL=RUN_DIR" ...   # runs of marl.train
    python results.py import results.json ../ablation/results.json "ALGO=LABEL" ...
    python results.py table results.json [--ref LABEL]           # markdown, one per map
    python results.py draw results.json curves_<map>.png --map 2s3z

``collect`` reads the map from the run's ``.hydra/config.yaml`` and the seed and final
win rate from its ``summary.json``; ``import`` takes the SMAX table's runs of an algorithm
(``coma_smax_<map>``). A label collected again replaces that label's run of the same map
and seed, so re-running a seed updates the record.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

from marl.analysis.curves import colour, figure, save
from marl.analysis.reliable import difference_ci, fmt_ci, iqm_ci, mean_ci, prob_improvement
from marl.analysis.runs import eval_curve

Run = dict[str, Any]
REF = "coma_return + PPO"
"""The page's new row: every table compares the others with it."""


def read_run(label: str, run_dir: Path) -> Run:
    cfg = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    x, y = eval_curve(run_dir / "metrics.jsonl", "eval/win_rate")
    return {"label": label, "map": cfg["env"]["scenario"], "seed": summary["seed"],
            "env_steps": summary["env_steps"], "final": summary["eval/win_rate"],
            "curve": [[a, b] for a, b in zip(x, y, strict=True)]}


def from_ablation(run: dict[str, Any], label: str) -> Run:
    return {"label": label, "map": run["name"].removeprefix("coma_smax_"), "seed": run["seed"],
            "env_steps": run["env_steps"], "final": run["success"],
            "curve": [[c[0], c[1]] for c in run["curve"]]}


def merge(path: Path, new: list[Run]) -> None:
    """Add ``new`` to the record at ``path``, replacing a run of the same label, map, seed."""
    old = json.loads(path.read_text()) if path.exists() else []
    key = {(r["label"], r["map"], r["seed"]) for r in new}
    kept = [r for r in old if (r["label"], r["map"], r["seed"]) not in key]
    path.write_text(json.dumps(kept + new, indent=1) + "\n")


def by_label(runs: list[Run], map_name: str) -> dict[str, list[Run]]:
    out: dict[str, list[Run]] = {}
    for r in runs:
        if r["map"] == map_name:
            out.setdefault(r["label"], []).append(r)
    return {k: sorted(v, key=lambda r: r["seed"]) for k, v in out.items()}


def steps(rs: list[Run]) -> str:
    m = sorted({round(r["env_steps"] / 1e6, 1) for r in rs})
    return "/".join(f"{s:g}M" for s in m)


def _versus(ref_x: list[float], x: list[float]) -> list[str]:
    """``ref`` minus a row (bold where the CI excludes 0) and ``P(ref > row)``; both
    blank below 2 seeds a side."""
    d = difference_ci(ref_x, x)
    if d is None:
        return ["", ""]
    diff = fmt_ci(d, sign=True)
    if d[1] > 0 or d[2] < 0:
        diff = f"**{diff}**"
    return [diff, fmt_ci(prob_improvement([ref_x], [x]), digits=2)]


def table(runs: list[Run], map_name: str, ref: str) -> str:
    """Markdown: each label's seeds, mean and IQM with their 95% bootstrap CIs
    (:mod:`marl.analysis.reliable`, as ``python -m marl.report`` computes them), and
    ``ref`` minus it (difference of means, bootstrap CI) with ``P(ref > it)``; the ``ref``
    row first, the others in the record's order."""
    rows = by_label(runs, map_name)
    rows = {k: rows[k] for k in sorted(rows, key=lambda k: k != ref)}
    width = max(len(v) for v in rows.values())
    head = ["row", "steps", *(f"s{i}" for i in range(width)), "mean [95% CI]",
            "IQM [95% CI]", f"{ref} minus it [95% CI]", f"P({ref} > it)"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ref_x = [r["final"] for r in rows.get(ref, [])]
    for label, rs in rows.items():
        x = [r["final"] for r in rs]
        seeds = {r["seed"]: f"{r['final']:.3f}" for r in rs}
        cells = [seeds.get(i, "-") for i in range(width)]
        versus = ["", ""] if label == ref or not ref_x else _versus(ref_x, x)
        name = f"**{label}**" if label == ref else label
        out.append("| " + " | ".join([name, steps(rs), *cells, fmt_ci(mean_ci(x)),
                                       fmt_ci(iqm_ci(x)), *versus]) + " |")
    return "\n".join(out)


def draw(runs: list[Run], map_name: str, out: Path) -> None:
    if not by_label(runs, map_name):
        print(f"no runs of {map_name} in the record: {out} not drawn")
        return
    fig, axes = figure()
    ax = axes[0]
    for i, (label, rs) in enumerate(by_label(runs, map_name).items()):
        for j, r in enumerate(rs):
            ax.plot([p[0] / 1e6 for p in r["curve"]], [p[1] for p in r["curve"]], "-",
                    marker=".", lw=1, alpha=0.8, color=colour(i),
                    label=f"{label} ({len(rs)})" if j == 0 else None)
    ax.set(xlabel="env steps (M)", ylabel="greedy win rate (128 episodes)",
           title=f"SMAX {map_name}", ylim=(-0.02, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save(fig, out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("collect", "import", "table", "draw"):
        s = sub.add_parser(name)
        s.add_argument("record", type=Path)
        if name == "import":
            s.add_argument("ablation", type=Path)
        if name == "draw":
            s.add_argument("out", type=Path)
        if name in ("collect", "import"):
            s.add_argument("pairs", nargs="+")
        s.add_argument("--map", default=None)
        s.add_argument("--ref", default=REF)
    a = p.parse_args()
    if a.cmd == "collect":
        pairs = [pair.split("=", 1) for pair in a.pairs]
        merge(a.record, [read_run(label, Path(run)) for label, run in pairs])
    elif a.cmd == "import":
        labels = dict(pair.split("=", 1) for pair in a.pairs)
        ablation = json.loads(a.ablation.read_text())["runs"]
        merge(a.record, [from_ablation(r, labels[r["algo"]]) for r in ablation
                         if r["algo"] in labels and (a.map is None or r["name"].endswith(a.map))])
    else:
        runs = json.loads(a.record.read_text())
        maps = [a.map] if a.map else sorted({r["map"] for r in runs})
        for m in maps:
            if a.cmd == "table":
                print(f"\n### {m}\n\n{table(runs, m, a.ref)}")
            else:
                draw(runs, m, a.out)


if __name__ == "__main__":
    main()
