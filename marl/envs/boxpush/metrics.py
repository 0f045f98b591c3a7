"""Box pushing's own credit metrics (``EnvSpec.credit_metrics``): who did the work."""

from __future__ import annotations

import numpy as np


def credit_metrics(stats: dict[str, np.ndarray], agents: tuple[str, ...]) -> dict[str, float]:
    """Who did the work, from per-episode counts the env reports (box pushing does).

    * ``<agent>/push_share``: the agent's share of all successful pushes in these
      episodes (sums to 1 over agents; absent when nobody pushed);
    * ``<agent>/push_attempt_share``: the same for push attempts;
    * ``<agent>/idle_rate``: fraction of its steps in which it did not move.
    """
    out: dict[str, float] = {}
    for key, name in (("pushes", "push_share"), ("push_attempts", "push_attempt_share")):
        counts = [stats.get(f"{key}/{a}") for a in agents]
        if all(c is not None for c in counts):
            total = float(sum(c.sum() for c in counts))
            if total > 0:
                for a, c in zip(agents, counts, strict=True):
                    out[f"{a}/{name}"] = float(c.sum()) / total
    steps = float(stats["length"].sum())
    for a in agents:
        idle = stats.get(f"idle/{a}")
        if idle is not None and steps > 0:
            out[f"{a}/idle_rate"] = float(idle.sum()) / steps
    return out
