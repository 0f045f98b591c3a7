"""Plain COMA, optimistic advantages and the others' best reply on the climbing and
penalty games: the converged joint action per seed, appended to a JSON file as each run
ends (a long study survives interruption and can be resumed: rows already in the file
are skipped).

    python experiments/optimism/matrix_study.py --seeds 10 \
        --json experiments/optimism/matrix_results.json --out runs/optimism/matrix \
        climbing_optimistic penalty100_optimistic ...

Each study name is one row of :data:`STUDIES`: an experiment and its overrides. Every run
goes through ``marl.analysis.matrix.train_one`` (the real ``Trainer``; the greedy joint
action read from the actor on the constant observation).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import torch

from marl.analysis.matrix import train_one

OPT = ["algo.negative_advantage_scale=0.0"]
STUDIES: dict[str, tuple[str, list[str]]] = {
    # climbing: plain as shipped, plain with the optimistic run's entropy, optimistic
    "climbing_plain": ("coma_climbing", []),
    "climbing_plain_entropy": ("coma_climbing", ["algo.entropy_coef=0.05"]),
    "climbing_optimistic": ("coma_climbing_optimistic", []),
    "climbing_optimistic_noentropy": ("coma_climbing", OPT),
    "climbing_central_v_optimistic": ("coma_climbing_optimistic", ["algo.advantage=central_v"]),
    "climbing_central_v": ("coma_climbing", ["algo.advantage=central_v",
                                             "algo.entropy_coef=0.05"]),
}
for _k in (100, 50, 10, 0):
    STUDIES[f"penalty{_k}_plain"] = ("coma_penalty", [f"env.k={_k}.0"])
    STUDIES[f"penalty{_k}_plain_entropy"] = ("coma_penalty", [f"env.k={_k}.0",
                                                              "algo.entropy_coef=0.05"])
    STUDIES[f"penalty{_k}_optimistic"] = ("coma_penalty_optimistic", [f"env.k={_k}.0"])
    STUDIES[f"penalty{_k}_central_v_optimistic"] = ("coma_penalty_optimistic", [
        f"env.k={_k}.0", "algo.advantage=central_v"])
    # the others' best reply (algo.optimistic_others = w, 0.9 in the experiment)
    STUDIES[f"penalty{_k}_pareto"] = ("coma_penalty_pareto", [f"env.k={_k}.0"])
# its ablations: w = 1 (pure Pareto-AC Q), w = 0.5, Pareto-AC's Q - V(s) (central_qv),
# composed with eta = 0, and with the optimistic run's entropy bonus
for _game in ("climbing", "penalty100"):
    _exp = "coma_climbing_pareto" if _game == "climbing" else "coma_penalty_pareto"
    STUDIES[f"{_game}_pareto_w1"] = (_exp, ["algo.optimistic_others=1.0"])
    STUDIES[f"{_game}_pareto_w0.5"] = (_exp, ["algo.optimistic_others=0.5"])
    STUDIES[f"{_game}_central_qv_pareto"] = (_exp, ["algo.advantage=central_qv"])
    STUDIES[f"{_game}_pareto_optimistic"] = (_exp, OPT)
    STUDIES[f"{_game}_pareto_entropy"] = (_exp, ["algo.entropy_coef=0.05"])
STUDIES["climbing_pareto"] = ("coma_climbing_pareto", [])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("studies", nargs="+", choices=list(STUDIES))
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--out", type=Path, default=Path("runs/optimism/matrix"))
    p.add_argument("--json", type=Path, required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = json.loads(args.json.read_text()) if args.json.exists() else []
    done = {(r["study"], r["seed"]) for r in rows}
    for study in args.studies:
        exp, overrides = STUDIES[study]
        for seed in range(args.seeds):
            if (study, seed) in done:
                continue
            r = train_one(exp, seed, args.out / study, overrides)
            r.update(study=study, overrides=overrides)
            rows.append(r)
            args.json.write_text(json.dumps(rows, indent=1) + "\n")
            print(f"{study} seed {seed}: {tuple(r['greedy'])} payoff {r['payoff']:g} "
                  f"({r['wall_time_s']:.0f} s)", flush=True)
    print("\n| study | converged joint actions (payoff: seeds) | optimal |")
    print("|---|---|---|")
    for study in args.studies:
        sr = [r for r in rows if r["study"] == study]
        counts = Counter(r["payoff"] for r in sr)
        cells = ", ".join(f"{pay:g}: {c}" for pay, c in counts.most_common())
        print(f"| {study} | {cells} | {sum(r['optimal'] for r in sr)} / {len(sr)} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
