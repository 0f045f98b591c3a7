"""Plots of a run, drawn from its ``metrics.jsonl`` (matplotlib, no display needed).

Each plot is a function ``(rows, out_path) -> bool`` (False when the run has nothing to
draw); :data:`PLOTS` names them for ``logger.plots``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

from marl.io.files import read_jsonl

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the headless backend


def _series(rows: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    pts = [(r["env_steps"], r[key]) for r in rows if r.get(key) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


_TRAIN_EVAL = {
    "return": ("train/return", "eval/return_mean", "episode return", None),
    "success": ("train/success", "eval/success_rate", "success rate", (-0.02, 1.02)),
}
"""Panel -> (training key, greedy-evaluation key, y label, y limits)."""


def _train_eval_panel(ax: Any, rows: list[dict[str, Any]], panel: str) -> None:
    train_key, eval_key, ylabel, ylim = _TRAIN_EVAL[panel]
    for key, label, marker in ((train_key, "train (exploring)", None),
                               (eval_key, "eval (greedy)", "o")):
        x, y = _series(rows, key)
        if x:
            ax.plot(x, y, label=label, marker=marker, ms=3)
    ax.set(xlabel="env steps", ylabel=ylabel, title=panel, ylim=ylim)
    ax.legend()
    ax.grid(alpha=0.3)


def learning_curve(rows: list[dict[str, Any]], out: Path) -> bool:
    """Training and greedy-evaluation return (and success rate where defined)."""
    panels = ["return"]
    if any("eval/success_rate" in r or "train/success" in r for r in rows):
        panels.append("success")
    fig, axes = plt.subplots(1, len(panels), figsize=(6 + 5 * (len(panels) - 1), 4),
                             squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        _train_eval_panel(ax, rows, panel)
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
    rows = read_jsonl(run_dir / "metrics.jsonl")
    out_dir = run_dir / "plots"
    out_dir.mkdir(exist_ok=True)
    made = {}
    for name in names:
        path = out_dir / f"{name}.png"
        if PLOTS[name](rows, path):
            made[name] = path
    return made
