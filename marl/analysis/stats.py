"""Means with 95% confidence intervals over seeds, and Welch's interval of a difference."""

from __future__ import annotations

import math
from collections.abc import Sequence

# Two-sided 95% quantiles of Student's t, t_{0.975, df}, df = 1..30; larger df: 1.96.
# (A table, not scipy: the committed results tables were computed with these values.)
T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
        2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
        2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)


def t975(df: int) -> float:
    """t_{0.975, df}: the half-width factor of a two-sided 95% interval."""
    if df < 1:
        raise ValueError(f"degrees of freedom {df}: must be >= 1")
    return T975[df - 1] if df <= len(T975) else 1.96


def mean_ci(xs: Sequence[float]) -> tuple[float, float]:
    """(mean, 95% CI half-width); the half-width is nan below 2 values, both nan for 0."""
    n = len(xs)
    if n == 0:
        return math.nan, math.nan
    m = sum(xs) / n
    if n < 2:
        return m, math.nan
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    return m, t975(n - 1) * sd / math.sqrt(n)


def welch_diff(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float] | None:
    """(mean(xs) - mean(ys), 95% CI half-width by Welch's t with the Welch-Satterthwaite
    degrees of freedom, rounded down); None below 2 values a side."""
    if len(xs) < 2 or len(ys) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    vx = sum((x - mx) ** 2 for x in xs) / (len(xs) - 1) / len(xs)
    vy = sum((y - my) ** 2 for y in ys) / (len(ys) - 1) / len(ys)
    if vx + vy == 0.0:
        return mx - my, 0.0
    df = (vx + vy) ** 2 / (vx ** 2 / (len(xs) - 1) + vy ** 2 / (len(ys) - 1))
    return mx - my, t975(max(1, int(df))) * math.sqrt(vx + vy)


def fmt_ci(m: float, h: float, digits: int = 3) -> str:
    """``"0.900 ± 0.248"``; the mean alone when the half-width is nan; ``"n/a"`` for none."""
    if math.isnan(m):
        return "n/a"
    return f"{m:.{digits}f}" if math.isnan(h) else f"{m:.{digits}f} ± {h:.{digits}f}"
