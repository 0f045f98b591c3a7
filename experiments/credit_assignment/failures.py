"""How a trained box-pushing policy fails: what the robots do in the episodes it loses.

``python experiments/credit_assignment/failures.py RUN_DIR [RUN_DIR ...] [--episodes N]
[--seed S]`` loads each run's newest checkpoint, plays ``N`` (default 2000) greedy
episodes, one per env, as ``marl.evaluate`` does, and prints one table row per run:
greedy success, the failed episodes, and what each step of a failed episode was:

* ``conflict``: the robots push the box in two different directions (it cannot move);
* ``into wall``: the pushes all go one way, off the grid;
* ``blocked``: they go one way, into a robot that is not pushing;
* ``other push``: any other push: the box moved, or a lone push was unlucky
  (``solo_push_prob``);
* ``no push``: no robot pushes (they are away from the box, or wait beside it).

It also prints the policy's confidence (the mean over robots and steps of the largest
action probability of the actor's softmax; none for a value-decomposition run, whose
network outputs Q-values) in failed and in won episodes; with a ``central_v`` critic
(central_v, MAPPO), its mean V(s_t) over the steps of failed and of won episodes; the share
of failed episodes whose box started off the hole's row and column (two push directions
needed; ``all`` gives that share over every episode), and the box's start cell (x, y;
y = 0 the top row) with the largest share of episodes lost. Positions are read from the
env's global state, so the script depends only on the env's documented layout.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from marl.algos.coma.critics import CriticBatch
from marl.build import build
from marl.core.runner import act_step, next_prev_actions
from marl.envs.boxpush import ACTION_DELTAS
from marl.evaluate import load_run_config
from marl.io.checkpoint import latest_checkpoint, load_checkpoint

KINDS = ("conflict", "into wall", "blocked", "other push", "no push")


def classify_step(robots: np.ndarray, box: np.ndarray, actions: np.ndarray, width: int,
                  height: int) -> np.ndarray:
    """Index into :data:`KINDS` of each env's step. ``robots`` ``[B, 2, 2]`` (x, y),
    ``box`` ``[B, 2]``, ``actions`` ``[B, 2]`` (0 stay, 1 up, 2 down, 3 left, 4 right)."""
    delta = np.asarray(ACTION_DELTAS)[actions]                      # [B, 2, (dx, dy)]
    pushes = np.all(robots + delta == box[:, None], -1) & (actions > 0)   # [B, 2]
    n_push = pushes.sum(1)
    # the push direction: of robot 0 if it pushes, else robot 1's
    d = np.where(pushes[:, :1], delta[:, 0], delta[:, 1])
    conflict = (n_push == 2) & np.any(delta[:, 0] != delta[:, 1], -1)
    dest = box + d
    off_grid = (dest[:, 0] < 0) | (dest[:, 0] >= width) | (dest[:, 1] < 0) | \
        (dest[:, 1] >= height)
    blocker = np.any(np.all(robots == dest[:, None], -1) & ~pushes, 1)
    kind = np.full(len(box), KINDS.index("other push"))
    kind[~off_grid & blocker] = KINDS.index("blocked")
    kind[off_grid] = KINDS.index("into wall")
    kind[conflict] = KINDS.index("conflict")
    kind[n_push == 0] = KINDS.index("no push")
    return kind


def positions(state: np.ndarray, width: int, height: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(robots ``[B, 2, 2]``, box ``[B, 2]``, hole ``[B, 2]``) in cells, from the global
    state (normalised x, y of robot_0, robot_1, box, hole, then t)."""
    scale = np.array([width - 1, height - 1], np.float64)
    xy = np.rint(state[:, :8].reshape(-1, 4, 2) * scale).astype(np.int64)
    return xy[:, :2], xy[:, 2], xy[:, 3]


@torch.inference_mode()
def analyse(run_dir: Path, episodes: int, seed: int) -> dict:
    """Play ``episodes`` greedy episodes of the run's newest checkpoint; the row's numbers."""
    cfg = load_run_config(run_dir)
    if cfg.env.name != "boxpush":
        raise SystemExit(f"{run_dir}: env.name={cfg.env.name!r}; this script reads box "
                         "pushing's state layout (env.name='boxpush')")
    ckpt = latest_checkpoint(run_dir / "checkpoints")
    if ckpt is None:
        raise SystemExit(f"{run_dir}: no checkpoint")
    env, learner, _ = build(cfg, episodes, seed=seed)
    learner.load_networks(load_checkpoint(ckpt)["learner"])
    policy, w, h = learner.policy, cfg.env.width, cfg.env.height
    b, n, a = env.num_envs, env.spec.n_agents, env.spec.n_actions
    buf = env.reset(seed=seed)
    obs, mask = torch.from_numpy(buf.obs), torch.from_numpy(buf.action_mask)
    alive = torch.from_numpy(buf.alive)
    prev = torch.full((b, n), a, dtype=torch.long)
    actions = torch.zeros(b, n, dtype=torch.long)
    first = torch.ones(b, dtype=torch.bool)
    hid = torch.zeros(b, n, policy.hidden_dim)
    counts = np.zeros((b, len(KINDS)), np.int64)
    conf_sum, length = np.zeros(b), np.zeros(b, np.int64)
    running, won = np.ones(b, bool), np.zeros(b, bool)
    robots, box, hole = positions(buf.state, w, h)
    diagonal_start = (box[:, 0] != hole[:, 0]) & (box[:, 1] != hole[:, 1])
    box_start = box.copy()
    critic = dict(getattr(learner, "critics", {})).get("central_v")
    v_sum = np.zeros(b)
    while running.any():
        if critic is not None:  # V(s_t) (the mean over agents of one shared value)
            v = critic.values(CriticBatch(torch.from_numpy(buf.state)[None].clone(),
                                          obs[None].clone(), actions[None].clone(),
                                          prev[None].clone()))
            v_sum[running] += v[0].mean(-1).numpy()[running]
        hh = hid * (~first).to(hid.dtype)[:, None, None] if policy.hidden_dim else hid
        out, _ = policy.actor(obs, prev, hh)
        conf = torch.softmax(out.masked_fill(~mask, float("-inf")), -1).amax(-1).mean(-1)
        if cfg.algo.vd is not None:  # Q-values, not a policy: no confidence to report
            conf = torch.full_like(conf, float("nan"))
        robots, box, _ = positions(buf.state, w, h)
        hid = act_step(env, policy, obs, prev, first, mask, alive, hid, True, actions)
        kind = classify_step(robots, box, actions.numpy(), w, h)
        counts[running, kind[running]] += 1
        conf_sum[running] += conf.numpy()[running]
        length[running] += 1
        done = buf.terminated | buf.truncated
        won[running & buf.terminated] = True
        running &= ~done
        first.copy_(torch.from_numpy(done))
        next_prev_actions(prev, actions, first, a)
    lost = ~won
    conf = conf_sum / length
    cells, n_start = np.unique(box_start, axis=0, return_counts=True)
    n_lost = np.array([int((lost & np.all(box_start == c, 1)).sum()) for c in cells])
    worst = int(np.argmax(n_lost / n_start))
    return {
        "run": str(run_dir), "episodes": b, "success": float(won.mean()),
        "failed": int(lost.sum()),
        "step_share": {k: float(counts[lost, i].sum() / max(1, length[lost].sum()))
                       for i, k in enumerate(KINDS)},
        "confidence_failed": float(conf[lost].mean()) if lost.any() else float("nan"),
        "confidence_won": float(conf[won].mean()) if won.any() else float("nan"),
        "diagonal_start_failed": float(diagonal_start[lost].mean()) if lost.any()
        else float("nan"),
        "diagonal_start_all": float(diagonal_start.mean()),
        "value_failed": float((v_sum / length)[lost].mean()) if critic is not None and lost.any()
        else float("nan"),
        "value_won": float((v_sum / length)[won].mean()) if critic is not None and won.any()
        else float("nan"),
        "worst_box_start": (tuple(int(v) for v in cells[worst]), int(n_lost[worst]),
                            int(n_start[worst])),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dirs", nargs="+", type=Path)
    p.add_argument("--episodes", type=int, default=2000)
    p.add_argument("--seed", type=int, default=123)
    args = p.parse_args()
    if args.episodes < 1:
        p.error(f"--episodes {args.episodes}: must be >= 1")
    torch.set_num_threads(1)
    print("| run | greedy success | failed | " + " | ".join(KINDS)
          + " | confidence failed / won | central V failed / won | diagonal start failed / all "
          "| box start lost most often (lost / started there) |")
    print("|---" * (7 + len(KINDS)) + "|")
    for d in args.run_dirs:
        r = analyse(d, args.episodes, args.seed)
        shares = " | ".join(f"{r['step_share'][k]:.2f}" for k in KINDS)
        cell, lost, started = r["worst_box_start"]
        print(f"| {d} | {r['success']:.3f} | {r['failed']} | {shares} | "
              f"{r['confidence_failed']:.3f} / {r['confidence_won']:.3f} | "
              f"{r['value_failed']:.3f} / {r['value_won']:.3f} | "
              f"{r['diagonal_start_failed']:.2f} / {r['diagonal_start_all']:.2f} | "
              f"{cell} {lost} / {started} |", flush=True)


if __name__ == "__main__":
    main()
