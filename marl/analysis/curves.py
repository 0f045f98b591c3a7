"""Learning curves of several runs: the mean over seeds with a 95% bootstrap band
(:func:`marl.analysis.reliable.curve_band`, clipped to the metric's range), or every run
thin with the group mean thick."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from marl.analysis.reliable import curve_band
from marl.analysis.runs import Record
from marl.analysis.tables import algo_key


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def band(curves: list[list[tuple[int, float | None]]], bounds: tuple[float, float] | None = None
         ) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, low, high) over runs at every step any run evaluated: the 95%
    bootstrap band of the mean, clipped to ``bounds``; a point where one run has a value."""
    by_step: dict[int, dict[int, float]] = defaultdict(dict)
    for i, c in enumerate(curves):
        for s, v in c:
            if v is not None:
                by_step[s][i] = v
    steps = sorted(by_step)
    values = np.array([[by_step[s].get(i, np.nan) for s in steps] for i in range(len(curves))],
                      float).reshape(len(curves), len(steps))
    return steps, *curve_band(values, bounds)


def success_and_return(name: str, algos: dict[str, list[Record]], out: Path) -> None:
    """Eval success and return vs env steps: mean and 95% CI band over seeds, one line per
    algorithm; algorithms whose records hold no curve are named under the plot."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    order = sorted(algos, key=algo_key)
    no_curve = [a for a in order if not any(r["curve"] for r in algos[a])]
    for algo in order:
        if algo in no_curve:
            continue
        for ax, i in zip(axes, (1, 2), strict=True):
            steps, m, low, high = band([[(p[0], p[i]) for p in r["curve"]]
                                        for r in algos[algo]], (0.0, 1.0) if i == 1 else None)
            (line,) = ax.plot(steps, m, label=f"{algo} (n={len(algos[algo])})", lw=1.6)
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.18, lw=0)
    axes[0].set(xlabel="env steps", ylabel="greedy eval success rate", ylim=(-0.02, 1.02),
                title=f"{name}: success (mean, 95% bootstrap band)")
    axes[1].set(xlabel="env steps", ylabel="greedy eval return",
                title=f"{name}: return (mean, 95% bootstrap band)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if no_curve:
        fig.text(0.5, 0.005, f"no stored curve (merged records): {', '.join(no_curve)}",
                 ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.03 if no_curve else 0, 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)


def runs_and_mean(ax: Any, curves: list[tuple[list[int], list[float]]], label: str,
                  colour: str) -> None:
    """Every run's curve thin and their mean (over the steps all runs reached) thick."""
    for x, y in curves:
        ax.plot(x, y, color=colour, alpha=0.25, lw=0.8)
    n = min(len(x) for x, _ in curves)
    ax.plot(curves[0][0][:n], np.mean([y[:n] for _, y in curves], 0), color=colour, lw=2,
            label=label)


def figure(ncols: int = 1, size: tuple[float, float] = (7, 4)):
    """A matplotlib (figure, row of ``ncols`` axes) without a display."""
    fig, axes = _pyplot().subplots(1, ncols, figsize=size, squeeze=False)
    return fig, axes[0]


def colour(i: int) -> str:
    """The ``i``-th colour of matplotlib's default cycle (wrapping around)."""
    cycle = _pyplot().rcParams["axes.prop_cycle"].by_key()["color"]
    return cycle[i % len(cycle)]


def save(fig: Any, out: Path) -> None:
    """Write ``fig`` to ``out`` (tight layout, 110 dpi) and close it."""
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    _pyplot().close(fig)
