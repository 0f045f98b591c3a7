"""What every actor update returns and the step-1 pass it starts from."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class ActorPass:
    """Step 1 of the update: the actors unrolled over the fragment (``[T, B, N, ...]``)."""

    soft: Tensor  # [T, B, N, A] the actor's own softmax (action mask applied)
    pi: Tensor  # [T, B, N, A] the exploring policy that acted (epsilon floor mixed in)
    hs: Tensor  # [T, B, N, H] hidden state after each step (H = 0 feed-forward)
    values: Tensor | None = None  # [T + 1, B, N] a value head's outputs, if the torso has one


@dataclass
class ActorResult:
    """What step 5 did: the surrogate / policy-gradient loss, the entropy, the gradient
    norm, and extra diagnostics (``loss/ppo_*``; critic losses of the minibatch hooks
    under ``critic_loss/<kind>`` and ``critic_grad/<kind>``)."""

    pg_loss: float
    entropy: float
    grad_norm: float
    extra: dict[str, float] = field(default_factory=dict)
