"""Statistics for few-seed RL results, after Agarwal et al. (NeurIPS 2021, "Deep RL at
the edge of the statistical precipice", the rliable library): the interquartile mean,
percentile intervals from a *stratified* bootstrap (seeds are resampled within each
task, so a pooled score is never an average over a different mix of tasks), and the
probability of improvement ``P(X > Y)``, and the difference of two means with its
bootstrap interval (each side resampled on its own, the two sides being the strata).

A score set is ``list[np.ndarray]``: one array of per-seed final scores per task
(stratum); a single task is a list of one array. Everything is seeded and
deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

Strata = Sequence[np.ndarray]
Statistic = Callable[[np.ndarray], float]


def iqm(x: np.ndarray) -> float:
    """The interquartile mean: the mean of the middle 50% (``trim_mean`` at 25%)."""
    return float(stats.trim_mean(np.asarray(x, float), 0.25))


def mean(x: np.ndarray) -> float:
    return float(np.mean(x))


_BATCHED: dict[Callable, Callable[[np.ndarray], np.ndarray]] = {
    mean: lambda b: b.mean(axis=1),
    iqm: lambda b: stats.trim_mean(b, 0.25, axis=1),
}
"""Row-wise forms of the statistics (every row of a ``[n, scores]`` array at once): the
same numbers as calling the statistic on each row, thousands of times faster."""


def _resample(strata: Strata, rng: np.random.Generator, n: int) -> np.ndarray:
    """``[n, sum of stratum sizes]``: each row one stratified resample."""
    parts = [np.asarray(s, float)[rng.integers(0, len(s), (n, len(s)))] for s in strata]
    return np.concatenate(parts, axis=1)


def stratified_ci(strata: Strata, statistic: Statistic, n: int = 5000,
                  level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(point estimate, low, high): ``statistic`` of every score, and the percentile
    interval of its stratified bootstrap. Below 2 scores in every stratum the interval
    is the point itself (nothing to resample)."""
    point = statistic(np.concatenate([np.asarray(s, float) for s in strata]))
    if all(len(s) < 2 for s in strata):
        return point, point, point
    boot = _resample(strata, np.random.default_rng(seed), n)
    batched = _BATCHED.get(statistic)
    values = batched(boot) if batched else np.array([statistic(row) for row in boot])
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return point, float(low), float(high)


def difference_ci(x: Sequence[float], y: Sequence[float], n: int = 5000,
                  level: float = 0.95, seed: int = 0) -> tuple[float, float, float] | None:
    """(mean(x) - mean(y), low, high): the percentile interval of the difference over
    ``n`` bootstrap draws, ``x`` and ``y`` resampled independently; None below 2 values
    a side (nothing to say about a difference)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or len(y) < 2:
        return None
    rng = np.random.default_rng(seed)
    draws = _resample([x], rng, n).mean(1) - _resample([y], rng, n).mean(1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(x.mean() - y.mean()), float(low), float(high)


def _one_task(xs: Sequence[float], statistic: Statistic, n: int, seed: int
              ) -> tuple[float, float, float]:
    if len(xs) == 0:
        return np.nan, np.nan, np.nan
    point, low, high = stratified_ci([np.asarray(xs, float)], statistic, n=n, seed=seed)
    return (point, low, high) if len(xs) > 1 else (point, np.nan, np.nan)


def mean_ci(xs: Sequence[float], n: int = 5000, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high) of one task's scores: :func:`stratified_ci` with one stratum,
    what ``python -m marl.report`` computes for a row. One score: no interval (low and
    high nan); none: all nan."""
    return _one_task(xs, mean, n, seed)


def iqm_ci(xs: Sequence[float], n: int = 5000, seed: int = 0) -> tuple[float, float, float]:
    """As :func:`mean_ci` for the interquartile mean."""
    return _one_task(xs, iqm, n, seed)


def half_width(ci: tuple[float, float, float]) -> float:
    """Half the interval's length, ``(high - low) / 2``: to set beside a ``±`` half-width."""
    return (ci[2] - ci[1]) / 2


def fmt_ci(ci: tuple[float, float, float] | None, digits: int = 3, scale: float = 1.0,
           unit: str = "", sign: bool = False) -> str:
    """``"0.900 [0.800, 1.000]"``; the point alone when there is no interval (nan
    bounds: one score); ``"n/a"`` for None or a nan point. ``scale`` divides (1e6 with
    ``unit="M"``); ``sign`` writes ``+`` on positive numbers."""
    if ci is None or np.isnan(ci[0]):
        return "n/a"
    f = f"{{:{'+' if sign else ''}.{digits}f}}{unit}"
    point, low, high = (v / scale for v in ci)
    if np.isnan(low) or np.isnan(high):
        return f.format(point)
    return f"{f.format(point)} [{f.format(low)}, {f.format(high)}]"


def _p_greater(x: np.ndarray, y: np.ndarray) -> float:
    """``P(X > Y) + 0.5 P(X = Y)`` over all pairs (the Mann-Whitney U over n m)."""
    gt = (x[:, None] > y[None, :]).mean()
    eq = (x[:, None] == y[None, :]).mean()
    return float(gt + 0.5 * eq)


def prob_improvement(x: Strata, y: Strata, n: int = 2000, level: float = 0.95,
                     seed: int = 0) -> tuple[float, float, float]:
    """``P(X > Y)``, averaged over tasks (``x[k]`` and ``y[k]`` are the same task), with
    its stratified-bootstrap percentile interval (both sides resampled)."""
    if len(x) != len(y):
        raise ValueError(f"{len(x)} tasks against {len(y)}: the same tasks are needed")
    point = float(np.mean([_p_greater(np.asarray(a, float), np.asarray(b, float))
                           for a, b in zip(x, y, strict=True)]))
    rng = np.random.default_rng(seed)
    draws = np.zeros(n)
    for a, b in zip(x, y, strict=True):
        a, b = np.asarray(a, float), np.asarray(b, float)
        ra = a[rng.integers(0, len(a), (n, len(a)))]
        rb = b[rng.integers(0, len(b), (n, len(b)))]
        draws += ((ra[:, :, None] > rb[:, None, :]).mean((1, 2))
                  + 0.5 * (ra[:, :, None] == rb[:, None, :]).mean((1, 2)))
    draws /= len(x)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return point, float(low), float(high)


def curve_band(values: np.ndarray, bounds: tuple[float, float] | None, n: int = 1000,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per step over runs (``values`` ``[runs, steps]``, nan where a run has no value):
    the mean and a 95% bootstrap band of it, clipped to the metric's ``bounds``."""
    rng = np.random.default_rng(seed)
    mid, low, high = [], [], []
    for col in values.T:
        col = col[~np.isnan(col)]
        m = float(col.mean()) if len(col) else np.nan
        if len(col) < 2:
            lo = hi = m
        else:
            boot = col[rng.integers(0, len(col), (n, len(col)))].mean(1)
            lo, hi = np.percentile(boot, [2.5, 97.5])
        mid.append(m)
        low.append(lo)
        high.append(hi)
    mid_a, low_a, high_a = np.array(mid), np.array(low), np.array(high)
    if bounds is not None:
        low_a, high_a = np.clip(low_a, *bounds), np.clip(high_a, *bounds)
    return mid_a, low_a, high_a
