#!/usr/bin/env bash
# Coordination across time: every run of the page, resumable (a finished run is skipped,
# an unfinished one resumes from its checkpoint), one at a time per worker; start two
# workers for the two cores: `run.sh 0 2 & run.sh 1 2 &` (worker i of n takes every n-th
# run). Checkpoints every 250k env steps, kept, for the per-250k diagnosis.
#   bash experiments/coordination/run.sh [worker] [workers]
# LIST=1 prints each run's marl.train overrides instead (one line a run; nothing runs).
set -uo pipefail
cd "$(dirname "$0")/../.."
worker=${1:-0}; workers=${2:-1}
out=${RUNS:-runs/coordination}
common="checkpoint.every_env_steps=250000 checkpoint.keep=20 logger.progress=false"
runs=()
# the strict box from scratch, 4M env steps, 5 seeds: the baseline rows
for s in 0 1 2 3 4; do
  runs+=("strict/coma_s$s|+experiment=coma_boxpush_strict seed=$s")
  runs+=("strict/coma_ppo_s$s|+experiment=coma_boxpush_strict algo=coma_ppo seed=$s")
  runs+=("strict/mappo_s$s|+experiment=mappo_boxpush env.solo_push_prob=0.0 seed=$s")
  runs+=("strict/qmix_s$s|+experiment=qmix_boxpush env.solo_push_prob=0.0 seed=$s")
  runs+=("strict/bestreply_s$s|+experiment=coma_boxpush_strict algo.optimistic_others=0.9 seed=$s")
done
# the Dec-POMDPs, 2M env steps, 3 seeds, one preset for every problem and horizon
for p in dectiger broadcastChannel GridSmall recycling; do
  for h in 3 4; do
    for s in 0 1 2; do
      runs+=("dpomdp/coma_${p}_h${h}_s$s|+experiment=coma_dpomdp env.problem=$p env.horizon=$h seed=$s")
    done
  done
done
# remedy: a history-state critic (Lyu et al., AAAI 2022), COMA's critic as a GRU over its
# input (state, own observation, the others' and the previous joint action, id)
for s in 0 1 2 3 4; do
  runs+=("strict/coma_gru_s$s|+experiment=coma_boxpush_strict algo.critic_net=gru seed=$s")
done
for h in 3 4; do
  for s in 0 1 2; do
    runs+=("dpomdp/comagru_dectiger_h${h}_s$s|+experiment=coma_dpomdp env.problem=dectiger env.horizon=$h algo.critic_net=gru seed=$s")
  done
done
# remedy: a count-based novelty bonus on the centralised state (algo.reward.transform=simhash,
# Tang et al., NeurIPS 2017), beta 1 (chosen once, on seed 0 of the strict box at 1M env
# steps, among 0.01 / 0.1 / 1), annealed to 0 over 2M env steps; the same on every env
bonus="algo.reward.transform=simhash algo.reward.simhash.beta=1.0"
for s in 0 1 2 3 4; do
  runs+=("strict/coma_simhash_s$s|+experiment=coma_boxpush_strict $bonus seed=$s")
done
for h in 3 4; do
  for s in 0 1 2; do
    runs+=("dpomdp/comasimhash_dectiger_h${h}_s$s|+experiment=coma_dpomdp env.problem=dectiger env.horizon=$h $bonus seed=$s")
  done
done
i=0
for r in "${runs[@]}"; do
  dir="$out/${r%%|*}"; args="${r#*|}"
  if [[ ${LIST:-0} == 1 ]]; then echo "$args $common"; continue; fi
  if (( i++ % workers != worker )); then continue; fi
  [ -f "$dir/summary.json" ] && continue
  extra=""; [ -d "$dir/checkpoints" ] && extra="resume=true"
  mkdir -p "$(dirname "$dir")"
  # shellcheck disable=SC2086
  nice -n 10 python -m marl.train $args $common "hydra.run.dir=$dir" $extra > "$dir.log" 2>&1 \
    || echo "failed: $dir (see $dir.log)"
done
