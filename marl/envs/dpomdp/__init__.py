"""Finite-horizon Dec-POMDPs from ``.dpomdp`` files, with known optimal values.

Problems. ``env.problem`` is a shipped problem -- ``dectiger`` (Dec-Tiger),
``broadcastChannel``, ``GridSmall`` (meeting on a 2x2 grid), ``recycling`` (Recycling
Robots); any case -- or the path of a ``.dpomdp`` / ``.dpomdp.gz`` file in the MADP
toolbox's format (the loader: :mod:`marl.envs.dpomdp.parser`). The shipped files are
GPL-3.0 data from the MADP toolbox (``problems/NOTICE``).

Episode. The start state is drawn from the file's start distribution. In every step
each agent picks one of its actions (``Discrete(max_i |A_i|)``; with unequal action
counts the action mask allows agent i only its first ``|A_i|``), the hidden state moves
by ``T(s' | s, ja)`` and a joint observation is drawn from ``O(jo | ja, s')``. Every
agent receives the same team reward, the file's ``R`` (negated for ``values: cost``;
the realised ``R(s, ja, s', jo)`` when the file's rewards depend on s' or jo). After
``env.horizon`` = H steps the episode terminates (``terminated=True``: nothing follows
the horizon, so there is no time-limit truncation). Returns are undiscounted sums,
whatever the file's ``discount:`` says, because the optimal values are undiscounted.

Observation of agent i (float32, length ``max_i |O_i| + 1 + H``): a one-hot of its own
last observation, slot ``max_i |O_i|`` meaning "none yet" (t = 0), then a one-hot of the
step t in ``0..H-1``. Global state (float32, length ``|S| + H``): a one-hot of the
hidden state, then a one-hot of t. The final observation and state (t = H) have no step
slot set. Episode statistic: ``team_return`` (the summed team reward).

Exact values. :mod:`marl.envs.dpomdp.evaluate` computes the expected return of a joint
policy (each agent's action a function of its own observation history) by enumerating
joint observation histories, the best open-loop plan, the uniform-random policy and a
brute-force optimum for tiny horizons; :mod:`marl.envs.dpomdp.values` holds the
published optima (MADP's optimal value table) beside the open-loop and random values.

:class:`DPOMDPCore` is the batched numpy core the runner uses, :class:`DPOMDPEnv` its
PettingZoo front end (``parallel_env(problem=..., horizon=...)``) over one env without
auto-reset. Only the config is imported eagerly; the rest loads on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from marl.envs.dpomdp.config import PROBLEMS, PROBLEMS_DIR, DPOMDPEnvConfig

_LAZY = {
    "DPOMDPCore": "core",
    "encode_history": "core",
    "DecPOMDP": "model",
    "DPOMDPParseError": "model",
    "load": "parser",
    "parse": "parser",
    "DPOMDPEnv": "parallel",
    "parallel_env": "parallel",
    "REFERENCE": "values",
    "reference": "values",
    "policy_value": "evaluate",
    "open_loop_value": "evaluate",
    "random_value": "evaluate",
    "monte_carlo_value": "evaluate",
    "brute_force_optimum": "evaluate",
    "policy_from_actor": "evaluate",
    "actor_from_policy": "evaluate",
    "normalised_score": "values",
    "score": "values",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["PROBLEMS", "PROBLEMS_DIR", "DPOMDPEnvConfig", *_LAZY]
