"""Throughput of the JaxMARL adapter and of the training loop on it (prints numbers).

    python experiments/smax/bench.py raw                   # adapter env steps/s
    python experiments/smax/bench.py train --steps 300000  # marl.train perf/steps_per_s

``raw``: smax_3m at B=512 and mpe_spread_jax at B=128 with random allowed actions, the
adapter's whole ``step`` (jitted core + copies into the VecBuffers) and the jitted core
alone, after a warm-up (compilation excluded). ``train``: runs ``python -m marl.train
+experiment=<exp> train.total_env_steps=<steps>`` for coma_smax_3m and coma_spread_jax
in a subprocess and reports the last ``perf/steps_per_s`` of its metrics.jsonl (the
window after compilation and the first evaluation). Numbers depend on what else runs on
the machine; run with nothing else busy.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from marl.analysis.runs import read_jsonl

ROOT = Path(__file__).resolve().parents[2]


def raw(steps: int) -> None:
    from marl.envs.jaxmarl import JaxMarlEnvConfig, JaxMarlVecEnv

    cases = {
        "smax_3m B=512": (JaxMarlEnvConfig(scenario="3m", kwargs={"max_steps": 100}), 512),
        "mpe_spread_jax B=128": (JaxMarlEnvConfig(id="MPE_simple_spread_v3", kwargs={
            "num_agents": 3, "num_landmarks": 3, "local_ratio": 0.5, "max_steps": 24}), 128),
    }
    import jax

    for name, (cfg, b) in cases.items():
        env = JaxMarlVecEnv(cfg, num_envs=b, seed=0)
        rng = np.random.default_rng(0)
        # Pre-drawn actions: the timing is the env's, not numpy's sampling.
        u = rng.random((steps, *env.buf.action_mask.shape), np.float32)
        buf = env.buf
        for i in range(5):
            env.step((u[i] * buf.action_mask).argmax(-1))
        t0 = time.perf_counter()
        for i in range(steps):
            env.step((u[i] * buf.action_mask).argmax(-1))
        full = b * steps / (time.perf_counter() - t0)
        fn = env._step_fns[None]
        acts = (u[0] * buf.action_mask).argmax(-1).astype(np.int32)
        t0 = time.perf_counter()
        for _ in range(steps):
            env._keys, env._states, env._alive, out, _ = fn(env._keys, env._states,
                                                             env._alive, acts)
        jax.block_until_ready(out)
        core = b * steps / (time.perf_counter() - t0)
        print(f"raw {name}: adapter step {full:,.0f} env steps/s; jitted core alone "
              f"{core:,.0f} env steps/s (fixed actions)", flush=True)


def train(steps: int, experiments: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline",
           "WANDB_SILENT": "true"}
    for exp in experiments:
        with tempfile.TemporaryDirectory() as d:
            cmd = [sys.executable, "-m", "marl.train", f"+experiment={exp}",
                   f"train.total_env_steps={steps}", "train.eval_every_env_steps=0",
                   f"train.log_every_env_steps={max(steps // 10, 1)}", "logger.progress=false",
                   "logger.plots=[]", f"hydra.run.dir={d}"]
            subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
            rows = read_jsonl(Path(d) / "metrics.jsonl")
            perf = [r for r in rows if "perf/steps_per_s" in r]
            # The first window holds the compilation, the last one the final evaluation.
            mid = perf[1:-1] or perf
            speed = float(np.median([r["perf/steps_per_s"] for r in mid]))
            collect = float(np.median([r["perf/collect_frac"] for r in mid]))
            print(f"train {exp}: {speed:,.0f} env steps/s (median of the windows between "
                  f"compilation and final evaluation; collect share {collect:.2f}); windows: "
                  + ", ".join(f"{r['perf/steps_per_s']:,.0f}" for r in perf), flush=True)
            print("  command: " + " ".join(cmd[1:]), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["raw", "train", "all"])
    p.add_argument("--steps", type=int, default=None,
                   help="raw: vectorised steps per case (200); train: env steps (300000)")
    p.add_argument("--experiments", nargs="+", default=["coma_smax_3m", "coma_spread_jax"])
    a = p.parse_args()
    if a.what in ("raw", "all"):
        raw(a.steps or 200)
    if a.what in ("train", "all"):
        train(a.steps or 300_000, a.experiments)


if __name__ == "__main__":
    main()
