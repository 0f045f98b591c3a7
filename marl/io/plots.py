"""Plots of a run, drawn from its ``metrics.jsonl`` (matplotlib, no display needed).

Each plot is a function ``(rows, out_path) -> bool`` (False when the run has nothing to
draw); :data:`PLOTS` names them for ``logger.plots``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the headless backend


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``metrics.jsonl``."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _series(rows: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    pts = [(r["env_steps"], r[key]) for r in rows if r.get(key) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def learning_curve(rows: list[dict[str, Any]], out: Path) -> bool:
    """Training and greedy-evaluation return (and success rate where defined)."""
    has_success = any("eval/success_rate" in r or "train/success" in r for r in rows)
    fig, axes = plt.subplots(1, 2 if has_success else 1, figsize=(11 if has_success else 6, 4),
                             squeeze=False)
    ax = axes[0, 0]
    for key, label in (("train/return", "train (exploring)"),
                       ("eval/return_mean", "eval (greedy)")):
        x, y = _series(rows, key)
        if x:
            ax.plot(x, y, label=label, marker="o" if key.startswith("eval") else None, ms=3)
    ax.set(xlabel="env steps", ylabel="episode return", title="return")
    ax.legend()
    ax.grid(alpha=0.3)
    if has_success:
        ax = axes[0, 1]
        for key, label in (("train/success", "train (exploring)"),
                           ("eval/success_rate", "eval (greedy)")):
            x, y = _series(rows, key)
            if x:
                ax.plot(x, y, label=label, marker="o" if key.startswith("eval") else None, ms=3)
        ax.set(xlabel="env steps", ylabel="success rate", title="success", ylim=(-0.02, 1.02))
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


def action_probs(rows: list[dict[str, Any]], out: Path) -> bool:
    """Mean policy probability of every action over training, one line per action
    (per agent): the classic bandit figure."""
    keys = sorted({k for r in rows for k in r if k.startswith("train/pi/")},
                  key=lambda k: (k.rsplit("/", 1)[0], int(k.rsplit("/", 1)[1])))
    if not keys:
        return False
    agents = sorted({k.split("/")[2] for k in keys})
    fig, axes = plt.subplots(1, len(agents), figsize=(6 * len(agents), 4), squeeze=False)
    for ax, agent in zip(axes[0], agents, strict=True):
        for k in keys:
            if k.split("/")[2] != agent:
                continue
            x, y = _series(rows, k)
            ax.plot(x, y, label=f"action {k.rsplit('/', 1)[1]}")
        ax.set(xlabel="env steps", ylabel="pi(action)", ylim=(-0.02, 1.02),
               title=f"action probabilities ({agent})")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


PLOTS: dict[str, Callable[[list[dict[str, Any]], Path], bool]] = {
    "learning_curve": learning_curve,
    "action_probs": action_probs,
}
"""Plot name (``logger.plots``) -> function."""


def make_plots(run_dir: Path, names: list[str]) -> dict[str, Path]:
    """Draw the named plots of a run into ``<run_dir>/plots/<name>.png``."""
    rows = read_metrics(run_dir / "metrics.jsonl")
    out_dir = run_dir / "plots"
    out_dir.mkdir(exist_ok=True)
    made = {}
    for name in names:
        path = out_dir / f"{name}.png"
        if PLOTS[name](rows, path):
            made[name] = path
    return made
