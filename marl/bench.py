"""Benchmarks that print numbers: ``python -m marl.bench``.

* raw env throughput: box pushing stepped with pre-generated random actions at B=1024;
* training-loop throughput: the real runner + learner at an experiment's settings
  (default ``coma_boxpush``), evaluation and logging excluded, split into acting and
  learning time;
* peak resident memory of this process after the training loop (it holds the same
  envs, nets and rollout as a run of that experiment).

``--envs boxpush,mpe_spread,...`` (or ``all``: every ``conf/env/*.yaml``) also measures
each env config through the runner with the untrained policy (acting only), which is
what the env costs a training run, and prints a table (agents, observation, actions,
build time, env steps/s); pixel envs are timed ``--pixel-seconds`` (default 3 s), an env
that cannot be built (a missing optional dependency) is a table row saying why.
``--envs-only`` skips the experiment benchmarks above.

``--pong`` (or ``--pong ppo_pong,coma_pong``) measures the Pong experiments' training
loops one after the other and prints a table: env steps/s of wall time, the acting /
learning split, and the same loop on the process's CPU time (CPU seconds of all its
threads: on a machine shared with other jobs the wall-clock figure measures the
neighbours as much as the code, the CPU-time figure what the loop costs).
Numbers on a shared 2-core machine are noisy: compare ratios measured in one run.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch

from marl.build import CONF_DIR, build, build_env
from marl.build import compose_config as _compose
from marl.core.device import resolve_device
from marl.io.metrics import peak_rss_mib


def bench_raw_env(num_envs: int, seconds: float, overrides: list[str]) -> float:
    """Env steps/s of the batched env alone, random actions drawn before timing (with
    action masks, a random allowed action: the argmax of pre-drawn noise over the mask)."""
    cfg = _compose(overrides)
    env = build_env(cfg, num_envs, seed=0)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    spec = env.spec
    if spec.has_action_mask:
        noise = rng.random((64, num_envs, spec.n_agents, spec.n_actions), np.float32) + 1e-3
        mask = env.buf.action_mask

        def action(i: int) -> np.ndarray:
            return (noise[i] * mask).argmax(-1)
    else:
        actions = rng.integers(0, spec.n_actions, (64, num_envs, spec.n_agents))

        def action(i: int) -> np.ndarray:
            return actions[i]
    for i in range(20):
        env.step(action(i % 64))
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for i in range(64):
            env.step(action(i))
        steps += 64 * num_envs
    return steps / (time.perf_counter() - t0)


def bench_training(overrides: list[str], seconds: float) -> dict[str, float]:
    """Training-loop env steps/s (collect + update) at the composed config's settings."""
    cfg = _compose(overrides)
    torch.set_num_threads(cfg.train.torch_threads)
    torch.manual_seed(0)
    _, learner, runner = build(cfg, cfg.train.num_envs, seed=0)
    for _ in range(5):  # warm-up: allocator, first-call overheads
        learner.policy.anneal(runner.env_steps)
        learner.update(runner.collect(learner.policy))
    t_collect = t_update = c_collect = c_update = 0.0
    start_steps = runner.env_steps
    while t_collect + t_update < seconds:
        t0, c0 = time.perf_counter(), time.process_time()
        learner.policy.anneal(runner.env_steps)  # as in training: the schedule's epsilon
        ro = runner.collect(learner.policy)
        t1, c1 = time.perf_counter(), time.process_time()
        learner.update(ro)
        t2, c2 = time.perf_counter(), time.process_time()
        t_collect += t1 - t0
        t_update += t2 - t1
        c_collect += c1 - c0
        c_update += c2 - c1
    steps = runner.env_steps - start_steps
    return {
        "train_steps_per_s": steps / (t_collect + t_update),
        "collect_steps_per_s": steps / t_collect,
        "update_steps_per_s": steps / t_update,
        "collect_frac": t_collect / (t_collect + t_update),
        "cpu_steps_per_s": steps / max(c_collect + c_update, 1e-9),
        "cpu_collect_frac": c_collect / max(c_collect + c_update, 1e-9),
        "rollout_mib": runner.ro.nbytes() / 2**20,
        "env_steps": float(steps),
        "seconds": t_collect + t_update,
    }


def bench_value_decomposition(seconds: float) -> dict[str, float]:
    """QMIX on SMAX 3m next to COMA at the same env steps per update (``qmix_smax_3m``'s
    B x T for both); the warm-up of :func:`bench_training` (5 fragments = 1,600 env steps,
    ~75 random-policy episodes, measured) fills QMIX's replay past one batch, so every timed
    update of QMIX includes its gradient step."""
    cfg = _compose(["+experiment=qmix_smax_3m"])
    shape = [f"train.num_envs={cfg.train.num_envs}",
             f"train.fragment_len={cfg.train.fragment_len}"]
    out: dict[str, float] = {}
    for exp in ("qmix_smax_3m", "coma_smax_3m"):
        r = bench_training([f"+experiment={exp}", *shape], seconds)
        out.update({f"{exp}/{k}": v for k, v in r.items()})
        print(f"{exp} (B={cfg.train.num_envs}, T={cfg.train.fragment_len}): "
              f"{r['train_steps_per_s']:,.0f} env steps/s "
              f"(acting {r['collect_steps_per_s']:,.0f}/s, "
              f"learning {r['update_steps_per_s']:,.0f}/s, acting share {r['collect_frac']:.0%})")
    return out


PIXEL_SECONDS = 3.0
"""Measurement time of pixel envs in ``--envs`` (they step at a few hundred steps/s)."""


def bench_env_config(env_name: str, num_envs: int, seconds: float,
                     pixel_seconds: float = PIXEL_SECONDS) -> dict[str, Any]:
    """Env steps/s of ``env=<env_name>`` through the runner with an untrained policy.

    Returns ``steps_per_s`` and what was measured (agents, observation shape, actions,
    build time, seconds). Pixel envs (uint8 observations) are timed for at most
    ``pixel_seconds``.
    """
    cfg = _compose([f"env={env_name}", "train.fragment_len=8"])
    t0 = time.perf_counter()
    env, learner, runner = build(cfg, num_envs, seed=0)
    try:
        build_s = time.perf_counter() - t0
        spec = env.spec
        pixels = spec.obs_dtype == "uint8"
        limit = min(seconds, pixel_seconds) if pixels else seconds
        runner.collect(learner.policy)  # warm-up
        start, t0 = runner.env_steps, time.perf_counter()
        while time.perf_counter() - t0 < limit:
            runner.collect(learner.policy)
        sps = (runner.env_steps - start) / (time.perf_counter() - t0)
    finally:
        env.close()
    return {"steps_per_s": sps, "agents": spec.n_agents, "obs": spec.obs_shape,
            "obs_dtype": spec.obs_dtype, "actions": spec.n_actions, "build_s": build_s,
            "seconds": limit, "env_class": type(env).__name__}


def bench_env_configs(names: list[str], num_envs: int, seconds: float,
                      pixel_seconds: float = PIXEL_SECONDS) -> dict[str, float]:
    """Measure every env config in ``names``; print a table; failures are rows too."""
    print(f"\nenv configs through the runner (untrained policy, acting only, B={num_envs}, "
          f"T=8; pixel envs timed {min(seconds, pixel_seconds):g} s):")
    print(f"| {'env':<14} | agents | {'observation':<22} | A  | build s | env steps/s |")
    print(f"|{'-' * 16}|--------|{'-' * 24}|----|---------|-------------|")
    out: dict[str, float] = {}
    for name in names:
        try:
            r = bench_env_config(name, num_envs, seconds, pixel_seconds)
        except Exception as e:  # noqa: BLE001 - report and go on to the next env
            msg = f"{type(e).__name__}: {e}".splitlines()[0][:90]
            print(f"| {name:<14} | failed: {msg}")
            continue
        out[f"env/{name}"] = r["steps_per_s"]
        obs = f"{r['obs_dtype']} {tuple(r['obs'])}"
        print(f"| {name:<14} | {r['agents']:>6} | {obs:<22} | {r['actions']:>2} | "
              f"{r['build_s']:>7.2f} | {r['steps_per_s']:>11,.0f} |")
    return out


PONG_EXPERIMENTS = ("ppo_pong", "coma_pong", "reinforce_pong")
"""The Pong experiments ``--pong`` measures by default."""


def bench_pong(names: list[str], seconds: float, overrides: list[str]) -> dict[str, float]:
    """Training-loop throughput of each Pong experiment in ``names``; prints a table."""
    print(f"\nPong training loops ({seconds:g} s each after 5 warm-up updates; CPU = the "
          "process's CPU time, all threads):")
    print("| experiment      | B x T     | threads | env steps/s | acting | learning | "
          "CPU env steps/s | acting (CPU) |")
    print("|-----------------|-----------|---------|-------------|--------|----------|"
          "-----------------|--------------|")
    out: dict[str, float] = {}
    for name in names:
        exp = [f"+experiment={name}", *overrides]
        cfg = _compose(exp)
        r = bench_training(exp, seconds)
        for k in ("train_steps_per_s", "collect_frac", "cpu_steps_per_s", "cpu_collect_frac"):
            out[f"pong/{name}/{k}"] = r[k]
        bt = f"{cfg.train.num_envs} x {cfg.train.fragment_len}"
        print(f"| {name:<15} | {bt:<9} | {cfg.train.torch_threads:>7} | "
              f"{r['train_steps_per_s']:>11,.0f} | {r['collect_frac']:>6.0%} | "
              f"{1 - r['collect_frac']:>8.0%} | {r['cpu_steps_per_s']:>15,.0f} | "
              f"{r['cpu_collect_frac']:>12.0%} |")
    return out


def _positive(kind: type) -> Any:
    """An argparse type: a number of ``kind`` above 0 (argparse exits 2 naming it)."""
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be above 0")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its message
    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m marl.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment", default="coma_boxpush",
                   help="experiment whose training settings are measured")
    p.add_argument("--raw-envs", type=_positive(int), default=1024,
                   help="B for the raw env benchmark")
    p.add_argument("--seconds", type=_positive(float), default=10.0, help="time per measurement")
    p.add_argument("--envs", default="", help="comma-separated env configs to measure "
                   "through the runner (e.g. boxpush,mpe_spread), or 'all'")
    p.add_argument("--envs-batch", type=_positive(int), default=8, help="B for --envs")
    p.add_argument("--envs-only", action="store_true",
                   help="with --envs: skip the raw-env and training-loop benchmarks")
    p.add_argument("--pixel-seconds", type=_positive(float), default=PIXEL_SECONDS,
                   help="with --envs: time per pixel env (they are slow)")
    p.add_argument("--pong", nargs="?", const=",".join(PONG_EXPERIMENTS), default="",
                   help="measure the Pong experiments' training loops (default: "
                   f"{','.join(PONG_EXPERIMENTS)}) instead of --experiment's")
    p.add_argument("--qmix", action="store_true", help="only QMIX vs COMA training "
                   "throughput on SMAX 3m at the same env steps per update")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    p.add_argument("overrides", nargs="*", help="Hydra overrides for the training benchmark")
    return p.parse_args(argv)


def bench_experiment(args: argparse.Namespace) -> dict[str, float]:
    """The raw env and the training loop of ``--experiment``, printed and returned."""
    exp = [f"+experiment={args.experiment}", *args.overrides]
    raw = bench_raw_env(args.raw_envs, args.seconds, exp)
    results = {"raw_env_steps_per_s": raw}
    print(f"raw env ({args.experiment}, B={args.raw_envs}, random actions): "
          f"{raw:,.0f} env steps/s")
    tr = bench_training(exp, args.seconds)
    results.update(tr)
    cfg = _compose(exp)
    results["device"] = str(resolve_device(cfg.device))
    print(f"training loop ({args.experiment}: B={cfg.train.num_envs}, "
          f"T={cfg.train.fragment_len}, torch_threads={cfg.train.torch_threads}, "
          f"device={results['device']}): "
          f"{tr['train_steps_per_s']:,.0f} env steps/s "
          f"(acting {tr['collect_steps_per_s']:,.0f}/s, learning "
          f"{tr['update_steps_per_s']:,.0f}/s, acting share {tr['collect_frac']:.0%}); "
          f"on CPU time {tr['cpu_steps_per_s']:,.0f} env steps/s")
    results["peak_rss_mib"] = peak_rss_mib()
    print(f"peak memory (RSS of this process): {results['peak_rss_mib']:,.0f} MiB; "
          f"rollout buffers {tr['rollout_mib']:.1f} MiB")
    return results


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    results: dict[str, float] = {}
    if args.pong:
        names = [n.strip() for n in args.pong.split(",") if n.strip()]
        results.update(bench_pong(names, args.seconds, args.overrides))
    elif args.qmix:
        results.update(bench_value_decomposition(args.seconds))
    elif not (args.envs and args.envs_only):
        results.update(bench_experiment(args))
    if args.envs:
        names = sorted(p.stem for p in (CONF_DIR / "env").glob("*.yaml")) \
            if args.envs == "all" else [n.strip() for n in args.envs.split(",") if n.strip()]
        results.update(bench_env_configs(names, args.envs_batch, args.seconds,
                                         args.pixel_seconds))
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
