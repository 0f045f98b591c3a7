"""PPO's per-sample losses (Schulman et al., 2017): the clipped surrogate and the
(optionally clipped) value error. The update that uses them is ``Learner._ppo_update``
(``marl/algos/coma/learner.py``, step 5)."""

from __future__ import annotations

import torch
from torch import Tensor


def ppo_objective(logp: Tensor, logp_old: Tensor, adv: Tensor, clip: float
                  ) -> tuple[Tensor, Tensor]:
    """PPO's clipped surrogate (Schulman et al., 2017, eq. 7), per sample, to maximise:
    ``min(r A, clip(r, 1 - clip, 1 + clip) A)`` with ``r = exp(logp - logp_old)``.

    All ``[...]``; ``logp_old`` and ``adv`` are constants (no gradient through them).
    Returns (objective, ratio)."""
    ratio = torch.exp(logp - logp_old.detach())
    adv = adv.detach()
    return torch.min(ratio * adv, ratio.clamp(1.0 - clip, 1.0 + clip) * adv), ratio


def value_error(v: Tensor, v_old: Tensor, ret: Tensor, clip: float | None) -> Tensor:
    """Per-sample value loss ``0.5 (V - G)^2``; with ``clip``, PPO's clipped variant
    ``0.5 max((V - G)^2, (V_old + clip(V - V_old, -clip, clip) - G)^2)``."""
    err = (v - ret.detach()) ** 2
    if clip is not None:
        v_clip = v_old + (v - v_old).clamp(-clip, clip)
        err = torch.max(err, (v_clip - ret.detach()) ** 2)
    return 0.5 * err
