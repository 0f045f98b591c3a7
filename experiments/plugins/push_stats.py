"""A worked metric hook: how often the two box-pushing robots act together.

``logger.metrics=[push_stats:HOOK]`` adds, after every update, the fraction of the
fragment's steps in which both robots chose the same push direction
(``joint_push/frac``), and at every evaluation the greedy episodes' mean length
(``eval/joint_push/episode_length``). The file is all a researcher writes::

    python -m marl.train +experiment=coma_boxpush 'plugin_path=[experiments/plugins]' \\
        'logger.metrics=[push_stats:HOOK]'

A hook is ``hook(event) -> {name: float}`` (see ``marl.io.rows.MetricEvent``); its
namespace is its ``namespace`` attribute, here ``joint_push``.
"""

from __future__ import annotations

import numpy as np

from marl.io.rows import MetricEvent

PUSHES = (1, 2, 3, 4)
"""Box pushing's move actions (0 stays); moving into the box pushes it."""


class JointPush:
    """The hook: a callable with a ``namespace``."""

    namespace = "joint_push"

    def __call__(self, event: MetricEvent) -> dict[str, float]:
        if event.phase == "eval":
            length = event.episodes.get("length", np.zeros(0))
            return {"episode_length": float(length.mean())} if length.size else {}
        a = event.rollout.actions  # [T, B, N] int64
        same = (a[..., 0] == a[..., 1]) & (a[..., 0] >= min(PUSHES))
        return {"frac": float(same.float().mean())}


HOOK = JointPush()
