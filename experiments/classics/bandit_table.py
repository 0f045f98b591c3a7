"""Bandit results: probability on the optimal arm(s) per run, a table and one figure.

    python experiments/classics/bandit_table.py multirun/bandit [--png out.png]

Reads every run directory below the given folders (``metrics.jsonl`` and the composed
``.hydra/config.yaml``). For each run: pi(optimal) = the sum of the exploring policy's
``train/pi/player_0/<arm>`` over the arms with the largest mean, as logged (every 10
updates); the first logged update where it reaches the threshold; its value at the last
update; the greedy evaluation's success rate. One update = one fragment of
``num_envs x fragment_len`` pulls.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import yaml

from marl.analysis.runs import read_jsonl

THRESHOLD = 0.95


def load_run(run_dir: Path) -> dict:
    cfg = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    means = cfg["env"]["means"]
    best = [i for i, m in enumerate(means) if m == max(means)]
    per_update = cfg["train"]["num_envs"] * cfg["train"]["fragment_len"]
    rows = read_jsonl(run_dir / "metrics.jsonl")
    curve = [(r["env_steps"] // per_update,
              sum(r[f"train/pi/player_0/{i}"] for i in best))
             for r in rows if "train/pi/player_0/0" in r]
    summary = json.loads((run_dir / "summary.json").read_text())
    first = next((u for u, p in curve if p >= THRESHOLD), None)
    return {"name": cfg["name"], "seed": cfg["seed"], "curve": curve, "first": first,
            "final": curve[-1][1], "updates": curve[-1][0],
            "eval_success": summary.get("eval/success_rate"),
            "wall": summary["wall_time_s"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="+", type=Path)
    ap.add_argument("--png", type=Path, default=None)
    args = ap.parse_args()
    runs = [load_run(p.parent) for root in args.roots for p in sorted(root.rglob("summary.json"))]
    by_name: dict[str, list[dict]] = defaultdict(list)
    for r in runs:
        by_name[r["name"]].append(r)
    print("| experiment | seed | first update with pi(opt) >= 0.95 | pi(opt) at last update "
          "| updates | greedy eval success | wall s |")
    print("|---|---|---|---|---|---|---|")
    for name, rs in sorted(by_name.items()):
        for r in sorted(rs, key=lambda r: r["seed"]):
            print(f"| {name} | {r['seed']} | {r['first']} | {r['final']:.3f} | {r['updates']} "
                  f"| {r['eval_success']:.3f} | {r['wall']:.1f} |")
    for name, rs in sorted(by_name.items()):
        ok = sum(r["first"] is not None and r["first"] <= 2000 and r["final"] >= THRESHOLD
                 for r in rs)
        print(f"{name}: {ok}/{len(rs)} seeds reach pi(opt) >= {THRESHOLD} within 2,000 updates "
              "and stay there")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for c, (name, rs) in zip(colours, sorted(by_name.items()), strict=False):
            for i, r in enumerate(rs):
                u, p = zip(*r["curve"], strict=True)
                ax.plot(u, p, color=c, alpha=0.7, lw=1, label=name if i == 0 else None)
        ax.axhline(THRESHOLD, color="k", ls="--", lw=0.8)
        ax.set(xlabel="updates (fragments of 256 pulls)", ylabel="pi(optimal arms)",
               ylim=(0.2, 1.01), title="bandit: probability on the optimal arm(s), 5 seeds")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(args.png, dpi=110)


if __name__ == "__main__":
    main()
