"""What one COMA-family update measured (:class:`UpdateStats`, returned by
:meth:`marl.algos.coma.learner.ComaLearner.update`) and the metrics row made of it
(:func:`update_metrics`: ``loss/``, ``train/`` and ``credit/``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from marl.envs.base import EnvSpec
from marl.io.metrics import masked_mean, policy_metrics


@dataclass
class UpdateStats:
    """What one update saw and did, as tensors and floats: :func:`update_metrics` turns
    it into the ``loss/``, ``train/`` and ``credit/`` metrics."""

    eps: float  # epsilon the fragment was collected (and log pi taken) with
    mask: Tensor  # [T, B, N] float: agent acted
    pi: Tensor  # [T, B, N, A] exploring policy
    adv: Tensor  # [T, B, N] advantage before standardisation
    baseline: Tensor  # [T, B, N]
    pg_loss: float  # ActorResult.pg_loss -> loss/actor
    entropy: float  # ActorResult.entropy -> loss/entropy
    actor_grad_norm: float  # ActorResult.grad_norm -> loss/actor_grad_norm
    ppo: dict[str, float] = field(default_factory=dict)  # ratio and clipping diagnostics
    # by critic kind: CriticStats.loss (the fragment's last critic step, or the mean of
    # the minibatch steps; a value head's value loss) -> loss/critic_<kind>
    critic_loss: dict[str, float] = field(default_factory=dict)
    # by critic kind: CriticStats.grad_norm, before clipping -> loss/critic_<kind>_grad_norm
    critic_grad_norm: dict[str, float] = field(default_factory=dict)
    td_target: Tensor | None = None  # [T, B, N] of the first critic


def update_metrics(s: UpdateStats, spec: EnvSpec) -> dict[str, float]:
    """:class:`UpdateStats` -> flat ``loss/``, ``train/`` and ``credit/`` metrics."""
    mask = s.mask
    m: dict[str, float] = {}
    for kind in s.critic_loss:
        m[f"loss/critic_{kind}"] = s.critic_loss[kind]
        m[f"loss/critic_{kind}_grad_norm"] = s.critic_grad_norm[kind]
    if s.critic_loss:
        m["loss/critic"] = next(iter(s.critic_loss.values()))
    if s.td_target is not None:
        m["train/td_target"] = masked_mean(s.td_target, mask)
    m.update({
        "loss/actor": s.pg_loss,
        "loss/actor_grad_norm": s.actor_grad_norm,
        "loss/entropy": s.entropy,
        "train/epsilon": s.eps,
        "train/baseline": masked_mean(s.baseline, mask),
        "train/advantage_abs": masked_mean(s.adv.abs(), mask),
    })
    for k, v in s.ppo.items():
        m[f"loss/ppo_{k}"] = v
    m.update(policy_metrics(s.pi, mask, spec))
    for i, agent in enumerate(spec.agents):
        m[f"credit/{agent}/advantage_mean"] = masked_mean(s.adv[..., i], mask[..., i])
    return m
