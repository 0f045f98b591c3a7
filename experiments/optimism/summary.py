"""Tables (mean with a 95% Student-t interval over seeds) and learning curves of the
optimism study.

    # matrix games: one row per study of matrix_study.py's JSON
    python experiments/optimism/summary.py matrix experiments/optimism/matrix_results.json \
        [--studies climbing_plain climbing_pareto ...]
    # training runs: final greedy evaluation per run directory, mean and CI per group,
    # curves of every run (thin) and the group mean (thick)
    python experiments/optimism/summary.py runs --metric eval/success_rate \
        --png experiments/optimism/boxpush_curves.png --json experiments/optimism/x.json \
        --group "coma_boxpush_pareto" runs/optim/boxpush/coma_boxpush_pareto_s{0,1,2,3,4} \
        --group ...

The interval is ``marl.analysis.stats.mean_ci``; the curves ``marl.analysis.curves``.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from marl.analysis.curves import figure, runs_and_mean, save
from marl.analysis.runs import eval_curve
from marl.analysis.stats import fmt_ci, mean_ci


def fmt(xs: list[float], digits: int = 2) -> str:
    return fmt_ci(*mean_ci(xs), digits=digits)


def matrix_table(path: Path, studies: list[str] | None) -> None:
    rows = json.loads(path.read_text())
    order = studies or list(dict.fromkeys(r["study"] for r in rows))
    print("| study | seeds | converged joint actions (cell = payoff: seeds) | optimal | "
          "final payoff, mean ± 95% CI |")
    print("|---|---|---|---|---|")
    for study in order:
        sr = [r for r in rows if r["study"] == study]
        if not sr:
            continue
        cells = Counter((tuple(r["greedy"]), r["payoff"]) for r in sr)
        cell_txt = ", ".join(f"{c} = {p + 0.0:g}: {n}" for (c, p), n in cells.most_common())
        print(f"| {study} | {len(sr)} | {cell_txt} | {sum(r['optimal'] for r in sr)} / "
              f"{len(sr)} | {fmt([r['payoff'] for r in sr])} |")


def runs_table(groups: list[list[str]], metric: str, png: Path | None,
               out_json: Path | None) -> None:
    fig, (ax,) = figure()
    result = []
    print(f"| group | runs | final {metric} per run | mean ± 95% CI | env steps | wall s |")
    print("|---|---|---|---|---|---|")
    for i, (label, *dirs) in enumerate(groups):
        done = [Path(d) for d in dirs if (Path(d) / "summary.json").exists()]
        if not done:
            continue
        summaries = [json.loads((d / "summary.json").read_text()) for d in done]
        finals = [s[metric] for s in summaries]
        curves = [eval_curve(d / "metrics.jsonl", metric) for d in done]
        runs_and_mean(ax, curves, f"{label} ({len(done)})", fig.colours[i % len(fig.colours)])
        walls = [s["wall_time_s"] for s in summaries]
        print(f"| {label} | {len(done)} | {', '.join(f'{v:.3f}' for v in finals)} | "
              f"{fmt(finals, 3)} | {summaries[0]['env_steps']:,} | "
              f"{min(walls):.0f}-{max(walls):.0f} |")
        result.append({"group": label, "runs": [d.name for d in done], "final": finals,
                       "mean_ci95": list(mean_ci(finals)), "curves": curves,
                       "env_steps": [s["env_steps"] for s in summaries],
                       "wall_time_s": walls})
    ax.set_xlabel("env steps")
    ax.set_ylabel(f"greedy {metric}")
    ax.legend(fontsize=8)
    if png:
        save(fig, png)
        print(f"wrote {png}")
    if out_json:
        out_json.write_text(json.dumps(result, indent=1) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("matrix")
    m.add_argument("json", type=Path)
    m.add_argument("--studies", nargs="+")
    r = sub.add_parser("runs")
    r.add_argument("--metric", default="eval/return_mean")
    r.add_argument("--group", nargs="+", action="append", required=True,
                   metavar=("LABEL", "RUN_DIR"))
    r.add_argument("--png", type=Path)
    r.add_argument("--json", type=Path)
    args = p.parse_args()
    if args.cmd == "matrix":
        matrix_table(args.json, args.studies)
    else:
        runs_table(args.group, args.metric, args.png, args.json)


if __name__ == "__main__":
    main()
