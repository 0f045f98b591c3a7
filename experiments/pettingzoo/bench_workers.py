"""Our shared-memory env workers against SuperSuit's vector machinery, at equal settings.

    python experiments/pettingzoo/bench_workers.py [--steps 300] [--envs 8 16] [--procs 0 2]

For each env (mpe2 simple_spread, pistonball as in conf/env/), batch size B and process
count k it times random-action steps of

* ours: ``PettingZooVecEnv`` with ``num_workers=k`` (k = 0: in process);
* SuperSuit: ``concat_vec_envs_v1(pettingzoo_env_to_vec_env_v1(env), B, num_cpus=k)``
  over the very same wrapped env (``build_env``), i.e. SuperSuit's ``ProcConcatVec``
  shared-memory workers (k > 0) or its in-process ``ConcatVecEnv`` (k = 0).

and prints env steps per second (B envs x steps / wall time, after a warm-up). It prints
what it measured, nothing else; the numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import yaml

from marl.envs.pettingzoo import PettingZooEnvConfig, PettingZooVecEnv, build_env

CONF = Path(__file__).resolve().parents[2] / "conf" / "env"
ENVS = ("mpe_spread", "pistonball")


def load_cfg(name: str, workers: int) -> PettingZooEnvConfig:
    data = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    data.pop("defaults", None)
    data["num_workers"] = workers
    return PettingZooEnvConfig(**data)


def ours(cfg: PettingZooEnvConfig, b: int, steps: int, warmup: int) -> float:
    env = PettingZooVecEnv(cfg, num_envs=b, seed=0)
    rng = np.random.default_rng(0)
    try:
        for i in range(warmup + steps):
            if i == warmup:
                t0 = time.perf_counter()
            env.step(rng.integers(0, env.spec.n_actions, (b, env.spec.n_agents)))
        return b * steps / (time.perf_counter() - t0)
    finally:
        env.close()


def supersuit(cfg: PettingZooEnvConfig, b: int, steps: int, warmup: int) -> float:
    import supersuit as ss

    vec = ss.concat_vec_envs_v1(
        ss.pettingzoo_env_to_vec_env_v1(build_env(cfg)), b, num_cpus=cfg.num_workers
    )
    vec.reset(seed=0)
    n_act = int(vec.action_space.n)  # one agent slot
    rng = np.random.default_rng(0)
    try:
        for i in range(warmup + steps):
            if i == warmup:
                t0 = time.perf_counter()
            vec.step(rng.integers(0, n_act, vec.num_envs))  # num_envs = B x agents
        return b * steps / (time.perf_counter() - t0)
    finally:
        vec.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--envs", type=int, nargs="+", default=[8, 16])
    p.add_argument("--procs", type=int, nargs="+", default=[0, 2])
    p.add_argument("--env", nargs="+", default=list(ENVS), choices=ENVS)
    args = p.parse_args()
    print(f"{'env':<11} {'B':>3} {'procs':>5} {'ours':>9} {'supersuit':>9}  (env steps/s)")
    for name in args.env:
        for b in args.envs:
            for k in args.procs:
                cfg = load_cfg(name, k)
                a = ours(cfg, b, args.steps, args.warmup)
                s = supersuit(cfg, b, args.steps, args.warmup)
                print(f"{name:<11} {b:>3} {k:>5} {a:>9.0f} {s:>9.0f}", flush=True)


if __name__ == "__main__":
    main()
