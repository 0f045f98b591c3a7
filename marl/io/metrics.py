"""Episode statistics -> flat, namespaced metrics (``train/``, ``eval/``, ``credit/``)."""

from __future__ import annotations

import resource

import numpy as np

from marl.envs.base import EnvSpec


def masked_mean(x, mask) -> float:
    """Mean of tensor ``x`` where ``mask`` (same shape, float) is 1; 0 if nowhere."""
    return float((x * mask).sum() / mask.sum().clamp_min(1.0))


def policy_metrics(pi, mask, spec: EnvSpec) -> dict[str, float]:
    """``train/pi/<agent>/<action>``: the mean policy ``pi`` ``[T, B, N, A]`` over the
    steps where ``mask`` ``[T, B, N]`` is 1, for small action spaces (<= 16) only."""
    if spec.n_actions > 16:
        return {}
    probs = (pi * mask[..., None]).sum((0, 1)) / mask.sum((0, 1)).clamp_min(1.0)[..., None]
    return {f"train/pi/{agent}/{u}": float(probs[i, u])
            for i, agent in enumerate(spec.agents) for u in range(spec.n_actions)}


def summarise_episodes(prefix: str, stats: dict[str, np.ndarray], spec: EnvSpec
                       ) -> dict[str, float]:
    """Per-episode arrays -> ``<prefix>/return_mean`` etc.; empty dict if no episodes.

    Every other per-episode array ``k`` (``VecBuffers.episode``: a native env's
    statistics, the PettingZoo adapter's ``info/...``) becomes ``<prefix>/<k>_mean``;
    NaN marks an episode that did not report it and is skipped. ``info/<agent>/<k>`` is
    left out where it equals ``info/<k>`` in every episode. The env's own credit metrics
    (``EnvSpec.credit_metrics``) go to ``credit/<agent>/...`` for training episodes and
    to ``eval/credit/<agent>/...`` for evaluation episodes.
    """
    if not stats or stats["return"].size == 0:
        return {}
    success_key = spec.success_metric
    out = {
        f"{prefix}/episodes": float(stats["return"].size),
        f"{prefix}/return_mean": float(stats["return"].mean()),
        f"{prefix}/return_std": float(stats["return"].std()),
        f"{prefix}/length_mean": float(stats["length"].mean()),
    }
    if success_key is not None and success_key in stats:
        out[f"{prefix}/success_rate"] = float(stats[success_key].mean())
        if success_key != "success":  # also under the env's own name: SMAX's train/win_rate
            out[f"{prefix}/{success_key}_rate"] = out[f"{prefix}/success_rate"]
    for k, v in stats.items():
        if k in ("return", "length", success_key) or _agent_copy(k, v, stats, spec.agents):
            continue
        if np.isnan(v).any():  # a statistic (an env's info) some episodes did not report
            v = v[~np.isnan(v)]
            if not v.size:
                continue
        out[f"{prefix}/{k}_mean"] = float(v.mean())
    credit_prefix = "credit" if prefix == "train" else f"{prefix}/credit"
    credit = spec.credit_metrics(stats, spec.agents) if spec.credit_metrics else {}
    for k, v in credit.items():
        out[f"{credit_prefix}/{k}"] = v
    return out


def _agent_copy(key: str, v: np.ndarray, stats: dict[str, np.ndarray],
                agents: tuple[str, ...]) -> bool:
    """``info/<agent>/<k>`` equal, episode by episode, to ``info/<k>`` (every agent
    reported the same value): left out, so per-agent rows appear only where they differ."""
    parts = key.split("/", 2)
    if len(parts) != 3 or parts[0] != "info" or parts[1] not in agents:
        return False
    mean = stats.get(f"info/{parts[2]}")
    return mean is not None and mean.shape == v.shape and np.array_equal(v, mean, equal_nan=True)


def peak_rss_mib() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
