#!/usr/bin/env bash
# Pong benchmark of the single-agent classics (issue 3): the two runs side by side, one
# core each, over the same wall-clock (at most GUARD seconds):
#   1. coma_pong: COMA with one agent, standard Atari preprocessing, conv actor and critic;
#   2. reinforce_pong: REINFORCE as Karpathy's pg-pong (karpathy mode, 200 hidden units).
# Usage, from anywhere, on an otherwise idle 2-core machine (W&B online if WANDB_API_KEY
# is set):
#   bash experiments/classics/pong.sh            # seed 0; SEED=1 OUT=... GUARD=... to change
#   bash experiments/classics/pong.sh logger.wandb.mode=disabled   # extra overrides: both runs
# Run lengths are sized from the throughput measured side by side (README.md: ~290 env
# steps/s for coma_pong, ~1,700-1,900 for reinforce_pong), so both take a little over an
# hour; raise them (and GUARD) for longer runs. `timeout` is a guard: on SIGTERM the
# trainer writes a checkpoint and exits; `resume=true` continues.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-outputs/classics_pong}
SEED=${SEED:-0}
GUARD=${GUARD:-6900}
COMA_STEPS=${COMA_STEPS:-1250000}            # x4 frames (frame skip 4) = 5M frames
REINFORCE_STEPS=${REINFORCE_STEPS:-7200000}  # x3 frames (frame skip 3) = 21.6M frames
mkdir -p "$OUT"

# evaluation (8 greedy games) every 250k steps
timeout -s TERM "$GUARD" nice -n 5 python -m marl.train +experiment=coma_pong seed="$SEED" \
    train.total_env_steps="$COMA_STEPS" logger.progress=false \
    hydra.run.dir="$OUT/coma_pong_s$SEED" "$@" > "$OUT/coma_pong_s$SEED.log" 2>&1 &
# 600 updates of 12,000 steps (about 10 early episodes each, as pg-pong's batch of 10);
# evaluation (8 greedy games) every 1.2M steps
timeout -s TERM "$GUARD" nice -n 5 python -m marl.train +experiment=reinforce_pong \
    seed="$SEED" train.total_env_steps="$REINFORCE_STEPS" train.eval_every_env_steps=1200000 \
    logger.progress=false hydra.run.dir="$OUT/reinforce_pong_s$SEED" "$@" \
    > "$OUT/reinforce_pong_s$SEED.log" 2>&1 &
wait

python experiments/classics/pong_table.py "$OUT"
