#!/usr/bin/env bash
# The strongest-COMA page's runs, then its record and tables (README.md).
#
#   bash experiments/smax/strongest_coma/run.sh [RUNS_DIR] [PARALLEL]
#
# Every run of the plan goes to RUNS_DIR/<name> (default runs/strongest_coma), PARALLEL at
# a time (default 2, one torch thread each); a finished run (summary.json) is skipped, so
# the script resumes (COLLECT_ONLY=1 skips the runs). Then results.py collects the runs into results.json beside this file
# (the rows of the SMAX ablation's runs are imported from its results.json files) and
# prints the tables. About 6 core-hours on this machine's cores (2s3z: ~8 min a 2M run).
# LIST=1 prints each run's marl.train overrides instead (one line a run; nothing runs).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
RUNS=$(realpath -m "${1:-runs/strongest_coma}")
PARALLEL=${2:-2}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 WANDB_MODE=disabled
export XLA_FLAGS=--xla_cpu_multi_thread_eigen=false

NEW="coma_return + PPO"
# The SMAX table's PPO settings (the 2s3z preset's) and JaxMARL's (the 3m preset's).
PPO="algo.eps_start=0 algo.eps_end=0 algo.entropy_coef=0.01 algo.normalize_advantage=true \
algo.actor_lr=1e-3 algo.critic_updates=2 train.fragment_len=40 train.num_envs=128 \
train.total_env_steps=2000000"
JAX="train.num_envs=128 train.fragment_len=128 algo.actor_lr=0.002 algo.critic_lr=0.002 \
algo.entropy_coef=0.0 algo.td_lambda=0.95 algo.actor_hidden=[128] algo.eps_start=0.0 \
algo.eps_end=0.0 algo.lr_anneal_steps=2000000 train.total_env_steps=2000000 \
algo.grad_clip=0.25 algo.critic_update=ppo"

# name|label|overrides
plan() {
  for s in 0 1 2 3 4; do
    echo "cr_2s3z_s$s|$NEW|+experiment=coma_ppo_smax_2s3z seed=$s"
    echo "cr_3m_s$s|$NEW|+experiment=coma_ppo_smax_3m seed=$s"
    echo "mappo_jax_3m_s$s|mappo (JaxMARL's settings)|+experiment=coma_smax_3m algo=mappo $JAX seed=$s"
  done
  for s in 3 4; do
    echo "coma_2s3z_s$s|COMA preset (32 envs x 10)|+experiment=coma_smax_2s3z seed=$s"
    echo "mappo_2s3z_s$s|mappo (SMAX table's PPO settings)|+experiment=coma_smax_2s3z algo=mappo $PPO seed=$s"
  done
  echo "ob_2s3z_s0|coma_ob + PPO|+experiment=coma_ppo_smax_2s3z algo.advantage=coma_ob seed=0"
  echo "obr_2s3z_s0|coma_ob_return + PPO|+experiment=coma_ppo_smax_2s3z algo.advantage=coma_ob_return seed=0"
  echo "cr2s3zset_3m_s0|coma_return + PPO at 2s3z's settings|+experiment=coma_smax_3m algo=coma_ppo $PPO seed=0"
  echo "mappo_jax_obs_3m_s0|mappo (JaxMARL's settings), obs-only actor|+experiment=coma_smax_3m algo=mappo $JAX algo.actor_inputs=[] seed=0"
  for s in 0 1 2; do
    echo "cr_5m6m_s$s|$NEW|+experiment=coma_ppo_smax_5m_vs_6m seed=$s"
    echo "coma_5m6m_s$s|COMA preset (32 envs x 10)|+experiment=coma_smax_5m_vs_6m seed=$s"
    echo "mappo_jax_5m6m_s$s|mappo (JaxMARL's settings)|+experiment=coma_smax_5m_vs_6m algo=mappo $JAX seed=$s"
  done
}

one() {  # name|label|overrides
  IFS='|' read -r name _ overrides <<< "$1"
  [[ -f $RUNS/$name/summary.json ]] && return 0
  # shellcheck disable=SC2086 - the overrides are words
  nice -n 10 python -m marl.train $overrides logger.wandb.mode=disabled logger.progress=false \
    "hydra.run.dir=$RUNS/$name" $([[ -d $RUNS/$name ]] && echo resume=true) \
    > "$RUNS/$name.log" 2>&1 || echo "failed: $name (log: $RUNS/$name.log)"
}
export -f one
export RUNS
if [[ ${LIST:-0} == 1 ]]; then plan | cut -d'|' -f3; exit 0; fi
mkdir -p "$RUNS"
[[ ${COLLECT_ONLY:-0} == 1 ]] || plan | xargs -P "$PARALLEL" -I{} bash -c 'one "$@"' _ {}

cd "$HERE"
python results.py import results.json ../ablation/current/results.json \
  "coma=COMA preset (32 envs x 10)" "central_v=central_v (32 envs x 10)"
python results.py import results.json ../ablation/results.json \
  "mappo=mappo (SMAX table's PPO settings)" "coma=COMA (128 envs x 40)" \
  "central_v=central_v (128 envs x 40)" "qmix=qmix (its preset)"
pairs=()
while IFS='|' read -r name label _; do
  [[ -f $RUNS/$name/summary.json ]] && pairs+=("$label=$RUNS/$name")
done < <(plan)
python results.py collect results.json "${pairs[@]}"
python results.py table results.json
for m in 2s3z 3m 5m_vs_6m; do python results.py draw results.json "curves_$m.png" --map "$m"; done
