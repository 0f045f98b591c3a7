"""Scripted robot pairs on box pushing: what loitering costs, without any learning.

``python experiments/credit_assignment/scripted.py [+experiment name ...]`` prints, for
each experiment, the greedy-evaluation numbers of three scripted pairs:

* ``both push``: both robots walk (shortest path around the box) to the cell behind the
  box and push it towards the hole, horizontally first, then vertically;
* ``one idles``: robot_0 does that alone, robot_1 stays where it is for the whole episode;
* ``one idles, out of the way``: as above, but robot_1 steps aside whenever it stands
  on the cell the box must move into (so it never blocks, it only does not help).

The pairs read the true positions from the env (they are baselines, not agents), and
run through :func:`marl.core.runner.evaluate`, one episode per env, like a learned policy.
"""

from __future__ import annotations

import sys
from collections import deque

import numpy as np
import torch
from omegaconf import OmegaConf

from marl.core.runner import evaluate
from marl.envs import ENV_CONFIGS, make_vec_env
from marl.envs.boxpush import ACTION_DELTAS, BoxPushCore
from marl.io.metrics import summarise_episodes

MODES = ("both push", "one idles", "one idles, out of the way")


def _first_steps(w: int, h: int, box: tuple[int, int], goal: tuple[int, int]) -> dict:
    """cell -> action of a shortest path to ``goal`` that never enters ``box`` (BFS)."""
    dist = {goal: 0}
    queue = deque([goal])
    while queue:
        x, y = queue.popleft()
        for dx, dy in ACTION_DELTAS[1:]:
            c = (x + dx, y + dy)
            if 0 <= c[0] < w and 0 <= c[1] < h and c != box and c not in dist:
                dist[c] = dist[(x, y)] + 1
                queue.append(c)
    step = {}
    for (x, y), d in dist.items():
        for u, (dx, dy) in enumerate(ACTION_DELTAS[1:], start=1):
            if dist.get((x + dx, y + dy), -1) == d - 1:
                step[(x, y)] = u
                break
    return step


class ScriptedPair:
    """A :class:`marl.core.runner.Policy` over a :class:`BoxPushCore` (reads its positions)."""

    hidden_dim = 0

    def __init__(self, env: BoxPushCore, mode: str):
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: choose one of {MODES}")
        self.env, self.mode = env, mode
        self._paths: dict = {}

    def _direction(self, box, hole) -> int:
        if box[0] != hole[0]:
            return 4 if hole[0] > box[0] else 3
        return 1 if hole[1] < box[1] else 2

    def _pusher(self, rob, box, hole) -> int:
        d = self._direction(box, hole)
        dx, dy = ACTION_DELTAS[d]
        behind = (box[0] - dx, box[1] - dy)
        if rob == behind:
            return d
        key = (box, behind)
        if key not in self._paths:
            self._paths[key] = _first_steps(self.env.width, self.env.height, box, behind)
        return self._paths[key].get(rob, 0)

    def _loiterer(self, rob, box, hole) -> int:
        if self.mode == "one idles":
            return 0
        dx, dy = ACTION_DELTAS[self._direction(box, hole)]
        if rob != (box[0] + dx, box[1] + dy):
            return 0
        for u in (3, 4) if dx == 0 else (1, 2):  # step sideways, off the box's line
            x, y = rob[0] + ACTION_DELTAS[u][0], rob[1] + ACTION_DELTAS[u][1]
            if 0 <= x < self.env.width and 0 <= y < self.env.height:
                return u
        return 0

    def act(self, obs, prev_actions, first, action_mask, h, greedy=False):
        pos = self.env.positions()
        out = np.zeros((self.env.num_envs, 2), np.int64)
        for b in range(self.env.num_envs):
            box, hole = tuple(pos["box"][b]), tuple(pos["hole"][b])
            r0, r1 = (tuple(r) for r in pos["robots"][b])
            out[b, 0] = self._pusher(r0, box, hole)
            out[b, 1] = (self._pusher(r1, box, hole) if self.mode == "both push"
                         else self._loiterer(r1, box, hole))
        return torch.from_numpy(out), h


def env_config(experiment: str):
    """The env config of ``conf/experiment/<experiment>.yaml`` (its defaults chain too)."""
    from hydra import compose, initialize_config_dir

    from marl.train import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base=None):
        cfg = compose("config", overrides=[f"+experiment={experiment}"])
    env = OmegaConf.to_container(cfg.env)
    return ENV_CONFIGS[env["name"]](**env)


def scripted_eval(env_cfg, mode: str, episodes: int = 2000, seed: int = 0) -> dict[str, float]:
    """Greedy-evaluation metrics (``eval/...``) of a scripted pair, one episode per env."""
    env = make_vec_env(env_cfg, episodes, seed=seed)
    stats = evaluate(env, ScriptedPair(env, mode), 0, seed=seed)
    return summarise_episodes("eval", stats, env.spec)


def main(experiments: list[str]) -> None:
    print("| experiment | pair | success | return | length | robot_1 push share |")
    print("|---|---|---|---|---|---|")
    for exp in experiments:
        cfg = env_config(exp)
        for mode in MODES:
            m = scripted_eval(cfg, mode)
            share = m.get("eval/credit/robot_1/push_share", 0.0)
            print(f"| {exp} | {mode} | {m['eval/success_rate']:.3f} | "
                  f"{m['eval/return_mean']:.3f} | {m['eval/length_mean']:.1f} | {share:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:] or ["coma_boxpush", "coma_boxpush_slacker"])
