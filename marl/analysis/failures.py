"""How a trained box-pushing policy fails: what the robots do in the episodes it loses.

:func:`analyse` plays one greedy episode per env through :func:`marl.core.runner.evaluate`
(the package's own acting loop) and watches it: a :class:`_Watch` wraps the env (each
step's positions and actions, before the step; the outcome after it) and the policy (its
confidence and, with a central V-critic, V(s_t) at every step). Each step of a lost
episode is one of :data:`KINDS`:

* ``conflict``: the robots push the box in two different directions (it cannot move);
* ``into wall``: the pushes all go one way, off the grid;
* ``blocked``: they go one way, into a robot that is not pushing;
* ``other push``: any other push (the box moved, or a lone push was unlucky);
* ``no push``: no robot pushes.

Positions are read from the env's global state (normalised x, y of robot_0, robot_1,
box, hole, then t), so the analysis depends only on the env's documented layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from marl.core.runner import evaluate
from marl.envs.boxpush import ACTION_DELTAS

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


class _Watch:
    """Per-env tallies over the first episode of every env (the one ``evaluate`` counts)."""

    def __init__(self, env: Any, width: int, height: int, critic: Any, confident: bool):
        b = env.num_envs
        self.env, self.w, self.h = env, width, height
        self.critic, self.confident = critic, confident
        self.counts = np.zeros((b, len(KINDS)), np.int64)
        self.conf_sum, self.v_sum = np.zeros(b), np.zeros(b)
        self.length = np.zeros(b, np.int64)
        self.running, self.won = np.ones(b, bool), np.zeros(b, bool)
        self.box_start = self.diagonal_start = None

    def observe_act(self, policy: Any, obs, prev, first, mask, h) -> None:
        """Before a step: the policy's confidence and V(s_t) of the running envs."""
        state = self.env.buf.state
        if self.box_start is None:
            _, box, hole = positions(state, self.w, self.h)
            self.box_start = box.copy()
            self.diagonal_start = (box[:, 0] != hole[:, 0]) & (box[:, 1] != hole[:, 1])
        run = self.running
        if self.critic is not None:  # V(s_t): the mean over agents of one shared value
            from marl.algos.coma.critics import CriticBatch
            v = self.critic.values(CriticBatch(torch.from_numpy(state)[None].clone(),
                                               obs[None].clone(), prev[None].clone(),
                                               prev[None].clone()))
            self.v_sum[run] += v[0].mean(-1).numpy()[run]
        if self.confident:
            hh = h * (~first).to(h.dtype)[:, None, None] if policy.hidden_dim else h
            out, _ = policy.actor(obs, prev, hh)
            conf = torch.softmax(out.masked_fill(~mask, float("-inf")), -1).amax(-1).mean(-1)
            self.conf_sum[run] += conf.numpy()[run]

    def observe_step(self, actions: np.ndarray) -> None:
        """Classify the step about to be taken, take it, record who ended how."""
        buf, run = self.env.buf, self.running
        robots, box, _ = positions(buf.state, self.w, self.h)
        kind = classify_step(robots, box, actions, self.w, self.h)
        self.counts[run, kind[run]] += 1
        self.length[run] += 1
        self.env.step(actions)
        self.won[run & buf.terminated] = True
        run &= ~(buf.terminated | buf.truncated)


class _Env:
    """The env as ``evaluate`` sees it, with every step shown to the watch."""

    def __init__(self, env: Any, watch: _Watch):
        self._env, self._watch = env, watch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)

    def step(self, actions: np.ndarray) -> None:
        self._watch.observe_step(actions)


class _Policy:
    """The policy as ``evaluate`` sees it, with every decision shown to the watch."""

    def __init__(self, policy: Any, watch: _Watch):
        self._policy, self._watch = policy, watch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._policy, name)

    def act(self, obs, prev, first, mask, h, greedy: bool = True):
        self._watch.observe_act(self._policy, obs, prev, first, mask, h)
        return self._policy.act(obs, prev, first, mask, h, greedy=greedy)


def _nan_mean(x: np.ndarray, where: np.ndarray) -> float:
    return float(x[where].mean()) if where.any() else float("nan")


def summarise(w: _Watch, run: str, with_value: bool) -> dict[str, Any]:
    """The row's numbers from a finished watch."""
    lost, won = ~w.won, w.won
    conf, value = w.conf_sum / w.length, w.v_sum / w.length
    if not w.confident:
        conf = np.full_like(conf, np.nan)
    cells, n_start = np.unique(w.box_start, axis=0, return_counts=True)
    n_lost = np.array([int((lost & np.all(w.box_start == c, 1)).sum()) for c in cells])
    worst = int(np.argmax(n_lost / n_start))
    nan = np.full_like(value, np.nan)
    return {
        "run": run, "episodes": len(won), "success": float(won.mean()), "failed": int(lost.sum()),
        "episode_steps": int(w.length.sum()),
        "step_share": {k: float(w.counts[lost, i].sum() / max(1, w.length[lost].sum()))
                       for i, k in enumerate(KINDS)},
        "confidence_failed": _nan_mean(conf, lost), "confidence_won": _nan_mean(conf, won),
        "diagonal_start_failed": _nan_mean(w.diagonal_start.astype(float), lost),
        "diagonal_start_all": float(w.diagonal_start.mean()),
        "value_failed": _nan_mean(value if with_value else nan, lost),
        "value_won": _nan_mean(value if with_value else nan, won),
        "worst_box_start": (tuple(int(v) for v in cells[worst]), int(n_lost[worst]),
                            int(n_start[worst])),
    }


@torch.inference_mode()
def analyse(run_dir: Path, episodes: int, seed: int) -> dict[str, Any]:
    """Play ``episodes`` greedy episodes of the run's newest checkpoint (one per env, as
    ``marl.evaluate`` does) and return the failure row's numbers. The policy's confidence
    is nan for a value-decomposition run (its network outputs Q-values); the critic's
    value is nan without a ``central_v`` critic. ValueError for a run that is not box
    pushing or has no checkpoint."""
    from marl.build import build
    from marl.evaluate import EvaluateError, load_run_config
    from marl.io.checkpoint import latest_checkpoint, load_checkpoint

    try:
        cfg = load_run_config(run_dir)
    except EvaluateError as e:
        raise ValueError(str(e)) from e
    if cfg.env.name != "boxpush":
        raise ValueError(f"{run_dir}: env.name={cfg.env.name!r}; the failure analysis reads "
                         "box pushing's state layout (env.name='boxpush')")
    ckpt = latest_checkpoint(run_dir / "checkpoints")
    if ckpt is None:
        raise ValueError(f"{run_dir}: no checkpoint in {run_dir / 'checkpoints'}")
    env, learner, _ = build(cfg, episodes, seed=seed)
    learner.load_networks(load_checkpoint(ckpt)["learner"])
    critic = dict(getattr(learner, "critics", {})).get("central_v")
    is_q = getattr(cfg.algo, "vd", None) is not None
    watch = _Watch(env, cfg.env.width, cfg.env.height, critic, confident=not is_q)
    policy = learner.policy
    evaluate(_Env(env, watch), _Policy(policy, watch), policy.hidden_dim, seed=seed)
    return summarise(watch, str(run_dir), critic is not None)
