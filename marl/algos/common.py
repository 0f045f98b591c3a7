"""What every learner family uses: the optimiser factory, the guarded optimiser step,
target-network syncing, learning-rate annealing, and the log-prob / entropy of a policy.

Written once here; the COMA family (:mod:`marl.algos.coma`) and value decomposition
(:mod:`marl.algos.vd`) both call them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

from marl.io.errors import NonFiniteError


def make_optimizer(params: Iterable[nn.Parameter], name: str, lr: float, alpha: float,
                   eps: float) -> torch.optim.Optimizer:
    """RMSprop (the COMA paper's choice) or Adam."""
    # foreach: one batched kernel per step instead of a Python loop over parameters.
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=alpha, eps=eps, foreach=True)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, eps=eps, foreach=True)
    raise ValueError(f"optimizer {name!r} unknown: use 'rmsprop' or 'adam'")


def guarded_step(loss: Tensor, params: Iterable[nn.Parameter], opt: torch.optim.Optimizer,
                 max_norm: float, what: str) -> float:
    """One optimiser step on ``loss``: refuse a non-finite loss, backward, clip the
    gradient to ``max_norm``, refuse a non-finite gradient norm, step. ``what`` names the
    loss in the :class:`NonFiniteError` (e.g. "actor"). Returns the gradient norm."""
    if not torch.isfinite(loss):
        raise NonFiniteError(f"{what} loss is {loss.item()}")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    grad = nn.utils.clip_grad_norm_(params, max_norm)
    if not torch.isfinite(grad):
        raise NonFiniteError(f"{what} gradient norm is {grad.item()}")
    opt.step()
    return float(grad)


@torch.no_grad()
def sync_targets(pairs: Sequence[tuple[nn.Module, nn.Module]], n_updates: int,
                 interval: int, tau: float | None) -> None:
    """Keep target copies in step after update number ``n_updates``: Polyak averaging
    ``target <- target + tau (net - target)`` every update when ``tau`` is set, else a
    hard copy every ``interval`` updates (the COMA paper's)."""
    if tau is not None:
        for net, tgt in pairs:
            for p, tp in zip(net.parameters(), tgt.parameters(), strict=True):
                tp.lerp_(p, tau)
    elif n_updates % interval == 0:
        for net, tgt in pairs:
            tgt.load_state_dict(net.state_dict())


def anneal_lr(opt: torch.optim.Optimizer, lr: float, frac: float) -> None:
    """Set every parameter group of ``opt`` to ``lr * frac``."""
    for g in opt.param_groups:
        g["lr"] = lr * frac


def lr_fraction(env_steps: int, anneal_steps: int) -> float:
    """``1 - env_steps / anneal_steps`` floored at 0 (1 when annealing is off)."""
    return 1.0 if not anneal_steps else max(0.0, 1.0 - env_steps / anneal_steps)


def log_prob(pi: Tensor, actions: Tensor) -> Tensor:
    """``[...]`` log pi(u) of the taken ``actions`` ``[...]`` under ``pi`` ``[..., A]``."""
    return torch.log(pi.gather(-1, actions[..., None]).squeeze(-1).clamp_min(1e-10))


def entropy(probs: Tensor) -> Tensor:
    """``[...]`` entropy of each distribution ``probs`` ``[..., A]``."""
    return -(probs * torch.log(probs.clamp_min(1e-10))).sum(-1)


def masked_mean_t(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x`` over the entries where ``mask`` is 1 (a tensor, for losses)."""
    return (x * mask).sum() / mask.sum().clamp_min(1.0)
