"""Reference values of the shipped problems, horizons 2..5, undiscounted.

``optimum``: the published optimal value, MADP's ``src/tests/optimalValueDatabase``
(rows with discount 1; Dec-Tiger's key there is ``DecTiger``). ``open_loop``: the best
fixed sequence of joint actions and ``random``: the uniform-random joint policy, both
computed exactly from the model by :func:`~marl.envs.dpomdp.evaluate.open_loop_value`
and :func:`~marl.envs.dpomdp.evaluate.random_value` (tests recompute them).
"""

from __future__ import annotations

from marl.envs.dpomdp.config import PROBLEMS

MADP_KEYS = {"dectiger": "DecTiger", "broadcastChannel": "broadcastChannel",
             "GridSmall": "GridSmall", "recycling": "recycling"}
"""Shipped problem -> its name in MADP's optimal value table."""

_OPTIMA = {
    "dectiger": {2: -4.0, 3: 5.190812499999996, 4: 4.802755156249994, 5: 7.026450983203114},
    "broadcastChannel": {2: 2.0, 3: 2.99, 4: 3.890000000000001, 5: 4.790000000000001},
    "GridSmall": {2: 0.91, 3: 1.550444, 4: 2.2415766, 5: 2.9704960768},
    "recycling": {2: 7.0, 3: 10.660125, 4: 13.38, 5: 16.486},
}
_COMPUTED = {  # horizon: (open_loop, random)
    "dectiger": {
        2: (-4.0, -92.44444444444444),
        3: (-6.0, -138.66666666666666),
        4: (-8.0, -184.88888888888889),
        5: (-10.0, -231.11111111111111),
    },
    "broadcastChannel": {
        2: (2.0, 0.875),
        3: (2.99, 1.19875),
        4: (3.8900000000000006, 1.4996874999999998),
        5: (4.790000000000001, 1.790371875),
    },
    "GridSmall": {
        2: (0.8476, 0.23245056000000008),
        3: (1.3252000000000002, 0.44821129420800015),
        4: (1.8028000000000002, 0.6841469904224259),
        5: (2.2804, 0.9283831233913086),
    },
    "recycling": {
        2: (6.3405000000000005, 2.676345679012346),
        3: (10.0, 3.208734375857339),
        4: (11.45, 3.681712410669105),
        5: (15.0, 4.140833686665921),
    },
}

REFERENCE: dict[str, dict[int, dict[str, float]]] = {
    p: {h: {"optimum": _OPTIMA[p][h], "open_loop": ol, "random": rnd}
        for h, (ol, rnd) in _COMPUTED[p].items()}
    for p in PROBLEMS
}
"""problem -> horizon -> {optimum, open_loop, random}."""


def reference(problem: str, horizon: int) -> dict[str, float]:
    """The reference values of a shipped problem (any case) at ``horizon`` in 2..5;
    KeyError naming what exists otherwise."""
    key = {p.lower(): p for p in REFERENCE}.get(str(problem).lower())
    if key is None or horizon not in REFERENCE[key]:
        raise KeyError(f"no reference values for problem {problem!r} at horizon {horizon}: "
                       f"problems {list(REFERENCE)}, horizons 2..5")
    return dict(REFERENCE[key][horizon])


def normalised_score(value: float, optimum: float, random: float) -> float:
    """``(value - random) / (optimum - random)``: 0 for the random policy, 1 optimal."""
    gap = optimum - random
    return (value - random) / gap if gap else float("nan")


def score(problem: str, horizon: int, value: float) -> dict[str, float]:
    """``value`` beside the references: ``value``, ``optimum``, ``open_loop``, ``random``,
    ``ratio`` (value / optimum) and ``normalised`` (:func:`normalised_score`)."""
    ref = reference(problem, horizon)
    opt = ref["optimum"]
    return {"value": float(value), **ref, "ratio": value / opt if opt else float("nan"),
            "normalised": normalised_score(value, opt, ref["random"])}
