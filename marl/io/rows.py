"""A metrics row of a training run, assembled: the last update's metrics, the training
episodes since the last row, the evaluation, the metric hooks, and the speed window.

Metric hooks (``logger.metrics: [module:attr, ...]``) are the researcher's own metrics,
one file outside ``marl/`` each. A hook is a callable ``hook(event) -> {name: float}``
taking a :class:`MetricEvent`; it is called after every update (``event.phase ==
"train"``: the rollout, the learner's raw statistics and its flat metrics, the
training episodes that ended in that fragment) and at every evaluation (``"eval"``:
the evaluation episodes). Episode statistics are per-episode arrays keyed as
:attr:`marl.envs.base.VecBuffers.episode` (``return``, ``length``, and the env's own
``EnvSpec.episode_metrics``, which a PettingZoo env's final ``info`` numbers reach). What
it returns goes into the row under its own namespace: ``<namespace>/<name>`` after an
update (the last update's values before the row) and ``eval/<namespace>/<name>`` after
an evaluation. The namespace is the hook's ``namespace`` attribute, else the attr's name.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from marl.envs.base import EnvSpec
from marl.io.metrics import summarise_episodes
from marl.schema import ConfigError, load_plugin

ALIASES = {"train/success": "train/success_rate", "train/return": "train/return_mean"}
"""Short names every row carries beside the long ones (dashboards key on them)."""


@dataclass
class MetricEvent:
    """What a metric hook sees."""

    phase: str
    """"train" (after an update) or "eval" (after an evaluation)."""
    env_steps: int
    """Env steps so far."""
    spec: EnvSpec
    """The env's spec (agents, shapes, episode metric names)."""
    episodes: Mapping[str, np.ndarray] = field(default_factory=dict)
    """Per-episode arrays of the episodes that ended (in the fragment, or in the
    evaluation): ``return``, ``length`` and the env's episode metrics."""
    rollout: Any = None
    """train: the fragment (:class:`marl.core.rollout.Rollout`, ``[T(+1), B, N, ...]``)."""
    stats: Any = None
    """train: the learner's raw update statistics (its family's type)."""
    metrics: Mapping[str, float] = field(default_factory=dict)
    """train: the learner's flat metrics of this update."""


MetricHook = Callable[[MetricEvent], Mapping[str, float]]


def load_hooks(names: list[str]) -> dict[str, MetricHook]:
    """``logger.metrics`` -> ``{namespace: hook}``, imported and checked at start."""
    hooks: dict[str, MetricHook] = {}
    for name in names:
        hook = load_plugin(name, "logger.metrics")
        if not callable(hook):
            raise ConfigError(f"logger.metrics = {name!r} is invalid: {type(hook).__name__} "
                              "is not callable (a hook is hook(event) -> {name: float})")
        ns = getattr(hook, "namespace", None) or name.partition(":")[2]
        if ns in hooks:
            raise ConfigError(f"logger.metrics = {name!r} is invalid: namespace {ns!r} is "
                              "taken by another hook (give one a namespace attribute)")
        hooks[ns] = hook
    return hooks


def call_hooks(hooks: Mapping[str, MetricHook], event: MetricEvent) -> dict[str, float]:
    """Every hook's output, flat and namespaced; a value that is not a real number is
    refused naming the hook and the key."""
    prefix = "eval/" if event.phase == "eval" else ""
    out: dict[str, float] = {}
    for ns, hook in hooks.items():
        for k, v in dict(hook(event)).items():
            try:
                out[f"{prefix}{ns}/{k}"] = float(v)
            except (TypeError, ValueError) as e:
                raise TypeError(f"metric hook {ns!r} returned {k!r}: {v!r}, not a number"
                                ) from e
    return out


class RowAssembler:
    """The rows of one run: what each holds, and the speed since the previous row."""

    def __init__(self, spec: EnvSpec, hooks: Mapping[str, MetricHook]):
        self.spec, self.hooks = spec, hooks
        self.restart(0)

    def restart(self, env_steps: int) -> None:
        """Open a new speed window at ``env_steps`` (now)."""
        self._t, self._steps, self.collect_s, self.update_s = time.perf_counter(), env_steps, \
            0.0, 0.0

    def timed(self, collect_s: float, update_s: float) -> None:
        self.collect_s += collect_s
        self.update_s += update_s

    def after_update(self, env_steps: int, rollout: Any, stats: Any,
                     metrics: dict[str, float], episodes: Mapping[str, np.ndarray]
                     ) -> dict[str, float]:
        """The update's metrics plus the hooks' (the row takes the last update's)."""
        if not self.hooks:
            return metrics
        return {**metrics, **call_hooks(self.hooks, MetricEvent(
            "train", env_steps, self.spec, episodes, rollout, stats, metrics))}

    def evaluation(self, env_steps: int, episodes: Mapping[str, np.ndarray]
                   ) -> dict[str, float]:
        """``eval/...`` of the evaluation episodes, with the hooks'."""
        row = summarise_episodes("eval", dict(episodes), self.spec)
        if self.hooks:
            row.update(call_hooks(self.hooks, MetricEvent("eval", env_steps, self.spec,
                                                          episodes)))
        return row

    def train_row(self, env_steps: int, update_metrics: dict[str, float],
                  episodes: dict[str, np.ndarray], wall_s: float) -> dict[str, float]:
        """The row logged now: the last update's metrics, the training episodes since
        the previous row, the aliases and ``perf/*``; the speed window restarts."""
        now = time.perf_counter()
        row = dict(update_metrics)
        row.update(summarise_episodes("train", episodes, self.spec))
        row.update({short: row[long] for short, long in ALIASES.items() if long in row})
        row["perf/steps_per_s"] = (env_steps - self._steps) / max(now - self._t, 1e-9)
        row["perf/collect_frac"] = self.collect_s / max(self.collect_s + self.update_s, 1e-9)
        row["perf/wall_time_s"] = wall_s
        self.restart(env_steps)
        self._t = now  # the window starts where this row's measurement ended
        return row

