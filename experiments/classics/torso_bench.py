"""CPU time of the pixel actor-critic's passes, per conv torso (``algo.conv_torso``).

    python experiments/classics/torso_bench.py [--threads 1] [--bf16]

For each torso of :data:`marl.core.nets.CONV_TORSOS` (with ``ppo_pong``'s head widths: 512
units for nature, 256 for dqn2013), one thread: forward + backward + Adam step over a
256-frame PPO minibatch (policy and value heads), a no-grad forward over 256 frames, and
an acting forward at B = 16; then the CPU time of ``ppo_pong``'s env alone (ale-py's
``AtariVectorEnv``, B = 16, random actions). Frames are uint8 ``[4, 84, 84]``, as Pong's. CPU time
(``time.process_time``), so neighbours on a shared machine change the numbers less than
wall-clock; ``--bf16`` builds the actor with ``conv_bf16=True`` (``algo.conv_bf16``: the conv
stack under bfloat16 autocast, the heads in float32), as a run with that option trains.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from marl.build import build_env, compose_config
from marl.core.nets import CONV_TORSOS, Actor

WIDTH = {"nature": 512, "dqn2013": 256}


def cpu_ms(fn, reps: int) -> float:
    for _ in range(3):
        fn()
    t0 = time.process_time()
    for _ in range(reps):
        fn()
    return (time.process_time() - t0) / reps * 1000


def bench_torso(name: str, bf16: bool) -> tuple[float, float, float]:
    """CPU ms of (forward + backward + Adam over 256 frames, no-grad forward over 256,
    acting forward over 16) for the torso ``name``."""
    frames = torch.randint(0, 256, (1, 256, 1, 4, 84, 84), dtype=torch.uint8)
    prev = torch.zeros(1, 256, 1, dtype=torch.long)
    first = torch.zeros(1, 256, dtype=torch.bool)
    actor = Actor((4, 84, 84), 1, 6, [WIDTH[name]], pixel_scale=1 / 255, value_head=True,
                  conv_torso=name, conv_bf16=bf16)
    opt = torch.optim.Adam(actor.parameters(), 2.5e-4)
    h0 = actor.initial_hidden(256)

    def train_step() -> None:
        logits, v, _ = actor.unroll_values(frames, prev, first, h0)
        loss = logits.logsumexp(-1).mean() + v.pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    def no_grad(b: int) -> None:
        with torch.no_grad():
            actor.unroll_values(frames[:, :b], prev[:, :b], first[:, :b], h0[:b])

    return cpu_ms(train_step, 10), cpu_ms(lambda: no_grad(256), 10), \
        cpu_ms(lambda: no_grad(16), 50)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bf16", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print("| torso | fwd + bwd + Adam, 256 frames | no-grad fwd, 256 | acting fwd, B = 16 |")
    print("|---|---|---|---|")
    for name in CONV_TORSOS:
        fb, fw, act = bench_torso(name, args.bf16)
        print(f"| {name} | {fb:.1f} ms | {fw:.1f} ms | {act:.2f} ms |")
    env = build_env(compose_config(["+experiment=ppo_pong"]), 16, seed=0)
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 6, (64, 16, 1))
    step_ms = cpu_ms(lambda: [env.step(a) for a in actions], 3) / (64 * 16)
    print(f"ppo_pong env alone (B = 16, random actions): {step_ms:.3f} ms CPU per env step "
          f"({1000 / step_ms:,.0f} env steps per CPU second)")


if __name__ == "__main__":
    main()
