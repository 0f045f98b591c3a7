"""Per-agent episode return of fixed policies on both simple-spread envs (prints numbers).

    python experiments/smax/spread_baselines.py [--envs 16] [--episodes-per-env 8]

``coma_spread_jax`` (JaxMARL's MPE_simple_spread_v3) and ``coma_spread`` (mpe2 through
PettingZoo) built by :func:`marl.build.build_env` from their experiment files, each
stepped with uniform random actions and with no-ops for whole 25-step episodes: if
the two envs define the reward the same way, the returns agree (up to sampling noise),
and the learning results of the two experiments are on one scale.
"""

from __future__ import annotations

import argparse

import numpy as np

from marl.build import build_env, compose_config


def returns(experiment: str, policy: str, num_envs: int, episodes_per_env: int) -> float:
    cfg = compose_config([f"+experiment={experiment}"])
    env = build_env(cfg, num_envs, seed=0)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    spec = env.spec
    ret, done_returns = np.zeros(num_envs), []
    while len(done_returns) < num_envs * episodes_per_env:
        if policy == "random":
            a = rng.integers(0, spec.n_actions, (num_envs, spec.n_agents))
        else:
            a = np.zeros((num_envs, spec.n_agents), np.int64)  # action 0: no-op in both
        buf = env.step(a)
        ret += buf.reward.mean(1)
        done = buf.terminated | buf.truncated
        done_returns += list(ret[done])
        ret[done] = 0.0
    env.close()
    return float(np.mean(done_returns))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", type=int, default=16)
    p.add_argument("--episodes-per-env", type=int, default=8)
    a = p.parse_args()
    for exp in ("coma_spread_jax", "coma_spread"):
        for policy in ("random", "noop"):
            r = returns(exp, policy, a.envs, a.episodes_per_env)
            print(f"{exp:<16} {policy:<6} per-agent return {r:7.2f} "
                  f"({a.envs * a.episodes_per_env} episodes)", flush=True)


if __name__ == "__main__":
    main()
