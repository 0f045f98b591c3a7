#!/usr/bin/env bash
# Two-hour Pong benchmarks of the single-agent classics (issue 3), one after the other:
#   1. coma_pong: COMA with one agent, standard Atari preprocessing, conv actor and critic;
#   2. reinforce_pong: REINFORCE as Karpathy's pg-pong (karpathy mode, 200 hidden units).
# Usage, from anywhere, on an otherwise idle machine (W&B online if WANDB_API_KEY is set):
#   bash experiments/classics/pong.sh            # seed 0; SEED=1 OUT=... to change
# Run lengths are sized from the throughput measured on the 2-core machine with other
# jobs running (README.md: ~200 env steps/s for coma_pong, ~1,200 for reinforce_pong),
# so each run takes about two hours there and less on an idle machine. `timeout` is a
# guard: on SIGTERM the trainer writes a checkpoint and exits; `resume=true` continues.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-outputs/classics_pong}
SEED=${SEED:-0}
GUARD=8100  # 2 h 15 min

# 1.5M env steps = 6M emulator frames (frame skip 4); evaluation every 250k steps
timeout -s TERM $GUARD nice -n 5 python -m marl.train +experiment=coma_pong seed="$SEED" \
    train.total_env_steps=1500000 logger.progress=false \
    hydra.run.dir="$OUT/coma_pong_s$SEED"

# 8.4M env steps = 25.2M frames (frame skip 3) = 700 updates of 12,000 steps (about 10
# early episodes each, as pg-pong's batch of 10); evaluation every 1M steps
timeout -s TERM $GUARD nice -n 5 python -m marl.train +experiment=reinforce_pong \
    seed="$SEED" train.total_env_steps=8400000 logger.progress=false \
    hydra.run.dir="$OUT/reinforce_pong_s$SEED"

python experiments/classics/pong_table.py "$OUT"
