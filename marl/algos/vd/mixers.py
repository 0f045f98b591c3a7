"""Mixers of value decomposition: how the chosen agent utilities combine into ``Q_tot``.

:data:`MIXERS` is the table of ``algo.vd.mixer``; a row says whether the mixer needs the
global state and how to build it. A plugin (``algo.vd.mixer=my_module:MY_MIXER``) is a
:class:`Mixer` row in the user's own module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn


class VDNMixer(nn.Module):
    """VDN (Sunehag et al., 2018): ``Q_tot = sum_a Q_a``. Ignores the state."""

    needs_state = False

    def set_state_scale(self, states: Tensor) -> None:
        """Nothing to scale: VDN ignores the state."""
        del states

    def forward(self, qs: Tensor, state: Tensor) -> Tensor:
        """qs ``[..., N]`` chosen utilities, state ``[..., S]`` -> ``[...]``."""
        del state
        return qs.sum(-1)


class QMixer(nn.Module):
    """QMIX's monotonic mixer (Rashid et al., ICML 2018, Sec. 4 and Fig. 2).

    ``Q_tot = w2 . elu(W1^T q + b1) + b2`` where the weights ``W1 [N, E]`` and
    ``w2 [E]`` come from hypernetworks of the global state passed through ``abs``
    (non-negative, so ``dQ_tot / dQ_a >= 0`` for every agent: the argmax of Q_tot is the
    tuple of per-agent argmaxes), and the biases ``b1 [E]`` and ``b2`` are free
    functions of the state (``b2`` a two-layer net, as in the paper). Hypernetworks
    with one hidden layer of ``hyper_hidden`` units (PyMARL's ``hypernet_layers: 2``);
    ``hyper_hidden = 0`` makes them linear (the paper's Fig. 2).

    The state is divided by ``state_scale`` (a saved buffer, per feature; ones until
    the learner fixes it from data, see :meth:`set_state_scale`): envs like SMAX give
    raw positions and health (up to ~40), which through the hypernetworks make the
    first mixing weights, and ``Q_tot``, tens of times too large.
    """

    needs_state = True

    def __init__(self, n_agents: int, state_dim: int, embed_dim: int = 32,
                 hyper_hidden: int = 64):
        super().__init__()
        self.n_agents, self.embed_dim = n_agents, embed_dim

        def hyper(out: int) -> nn.Module:
            if hyper_hidden == 0:
                return nn.Linear(state_dim, out)
            return nn.Sequential(nn.Linear(state_dim, hyper_hidden), nn.ReLU(),
                                 nn.Linear(hyper_hidden, out))

        self.hyper_w1 = hyper(n_agents * embed_dim)
        self.hyper_w2 = hyper(embed_dim)
        self.hyper_b1 = nn.Linear(state_dim, embed_dim)
        self.hyper_b2 = nn.Sequential(nn.Linear(state_dim, embed_dim), nn.ReLU(),
                                      nn.Linear(embed_dim, 1))
        self.register_buffer("state_scale", torch.ones(state_dim))

    @torch.no_grad()
    def set_state_scale(self, states: Tensor) -> None:
        """Fix the per-feature scale to ``max(|state|, 1)`` over ``states [..., S]``."""
        self.state_scale.copy_(states.reshape(-1, states.shape[-1]).abs().amax(0).clamp_min(1.0))

    def forward(self, qs: Tensor, state: Tensor) -> Tensor:
        """qs ``[..., N]`` chosen utilities, state ``[..., S]`` -> ``Q_tot [...]``."""
        lead = qs.shape[:-1]
        state = state / self.state_scale
        w1 = self.hyper_w1(state).abs().reshape(*lead, self.n_agents, self.embed_dim)
        b1 = self.hyper_b1(state)  # [..., E]
        hidden = nn.functional.elu((qs.unsqueeze(-2) @ w1).squeeze(-2) + b1)  # [..., E]
        w2 = self.hyper_w2(state).abs()  # [..., E]
        return (hidden * w2).sum(-1) + self.hyper_b2(state).squeeze(-1)


class Mixer(NamedTuple):
    """A row of :data:`MIXERS`."""

    needs_state: bool
    """True: conditions on the global state (the env must have one)."""
    make: Callable[[int, int, Any], nn.Module]
    """``make(n_agents, state_dim, vd_cfg)`` -> the mixer module."""


MIXERS: dict[str, Mixer] = {
    "vdn": Mixer(False, lambda n, s, vd: VDNMixer()),
    "qmix": Mixer(True, lambda n, s, vd: QMixer(n, s, vd.mixer_embed, vd.hyper_hidden)),
}
"""Mixer name (``algo.vd.mixer``) -> its row; the config validates against these keys."""
