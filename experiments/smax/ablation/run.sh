#!/usr/bin/env bash
# The SMAX ablation table's runs, then the table (experiments/smax/ablation/README.md).
#
#   bash experiments/smax/ablation/run.sh [RUNS_DIR] [PARALLEL]
#
# One run per line of the plan below, PARALLEL (default 2) at a time, each in
# RUNS_DIR/<experiment>/<algo>_s<seed>; a run with a summary.json is skipped, so the
# script resumes a partial table. Every run is `python -m marl.train +experiment=<exp>
# algo=<algo> seed=<seed>` with the experiment's settings at 2M env steps and 128 envs
# (coma_smax_3m itself now runs 32 envs for 4M: the table was made before); the PPO rows
# (mappo, ippo) change only what PPO needs (no epsilon floor, entropy bonus 0.01,
# standardised advantages, 40-step fragments, two critic steps per fragment:
# PPO_OVERRIDES). The QMIX and VDN rows are
# `+experiment=qmix_smax_<map> algo=qmix|vdn name=coma_smax_<map>`: the value-decomposition
# learner at its own settings and length (experiments/value_decomposition/README.md),
# named into the same table. Then:
#   python experiments/smax/ablation/aggregate.py RUNS_DIR --out experiments/smax/ablation
# LIST=1 prints each run's marl.train overrides instead (one line a run; nothing runs).
set -euo pipefail
cd "$(dirname "$0")/../../.."
RUNS=${1:-runs/smax}
PARALLEL=${2:-2}
STEPS=2000000
PPO_OVERRIDES="algo.eps_start=0 algo.eps_end=0 algo.entropy_coef=0.01 algo.normalize_advantage=true algo.actor_lr=1e-3 algo.critic_updates=2 train.fragment_len=40"
export WANDB_MODE=${WANDB_MODE:-disabled}
plan() {  # the paper's question first (COMA v central-V v IAC-V), 2s3z's COMA among them
  local s a
  for s in 0 1 2 3 4; do
    for a in coma central_v iac_v; do echo "coma_smax_3m $a $s"; done
    if ((s < 3)); then echo "coma_smax_2s3z coma $s"; fi
  done
  for s in 0 1 2; do for a in central_v iac_v; do echo "coma_smax_2s3z $a $s"; done; done
  for s in 0 1 2 3 4; do for a in central_qv iac_q mappo ippo qmix vdn; do
    echo "coma_smax_3m $a $s"; done; done
  for s in 0 1 2; do for a in central_qv iac_q mappo ippo qmix vdn; do
    echo "coma_smax_2s3z $a $s"; done; done
}
one() {
  local exp=$1 algo=$2 seed=$3 extra="" args
  local dir="$RUNS/$exp/${algo}_s$seed"
  if [[ $algo == qmix || $algo == vdn ]]; then
    args="+experiment=${exp/coma_/qmix_} algo=$algo name=$exp seed=$seed"
  else
    [[ $algo == mappo || $algo == ippo ]] && extra=$PPO_OVERRIDES
    args="+experiment=$exp algo=$algo algo.team_reward=off seed=$seed \
train.total_env_steps=$STEPS train.num_envs=128 checkpoint.every_env_steps=300000 $extra"
  fi
  if [[ ${LIST:-0} == 1 ]]; then echo "$args"; return 0; fi
  [[ -f $dir/summary.json ]] && return 0
  mkdir -p "$RUNS/$exp"
  # shellcheck disable=SC2086 - the overrides are words
  nice -n 5 python -m marl.train $args logger.progress=false resume=true \
    hydra.run.dir="$dir" > "$dir.log" 2>&1
}
export -f one
export RUNS STEPS PPO_OVERRIDES
if [[ ${LIST:-0} == 1 ]]; then plan | while read -r e a s; do one "$e" "$a" "$s"; done; exit 0; fi
plan | xargs -P "$PARALLEL" -L 1 bash -c 'one "$@"' _
python experiments/smax/ablation/aggregate.py "$RUNS" --out experiments/smax/ablation --threshold 0.8
