"""The critic's network over its prepared input, one row each of :data:`CRITIC_NETS`
(``algo.critic_net``): a feed-forward MLP, or a GRU over the sequence of inputs.

Shape letters: T time, B envs, N agents, I input features, H the GRU's units, O outputs.

A recurrent critic sees the whole history of its input since the episode started
(JaxMARL's MAPPO critic: a GRU over the world state and the agent's id). It is unrolled
over a fragment from a carried state (reset where ``first``), like a GRU actor; the
value of a *next* situation is one more step from the hidden state after t
(:meth:`GruCritic.step`), which is the sequence's own next output wherever the next
situation is the following entry of the fragment.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from marl.core.nets import GRU_INITS, Critic, _ortho, mlp


class GruCritic(nn.Module):
    """``Dense(hidden[0]) -> ReLU -> GRU(hidden[0]) -> MLP(hidden[1:]) -> O``.

    With ``hidden=[128, 128]`` and ``gru_init=flax`` this is JaxMARL's MAPPO critic
    (baselines/MAPPO/mappo_rnn_smax.py's CriticRNN; its post-GRU layer has gain 2, ours
    sqrt 2 as in every MLP here).
    """

    recurrent = True

    def __init__(self, in_dim: int, out_dim: int, hidden: Sequence[int] = (128, 128),
                 gru_init: str = "torch"):
        super().__init__()
        self.hidden_dim = h = hidden[0]
        self.fc = _ortho(nn.Linear(in_dim, h), math.sqrt(2))
        self.gru = nn.GRUCell(h, h)
        if GRU_INITS[gru_init] is not None:
            GRU_INITS[gru_init](self.gru)
        self.head = mlp(h, hidden[1:], out_dim, out_gain=1.0)

    def step(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """One step on any leading axes: x ``[..., I]``, h ``[..., H]`` -> (out, next h)."""
        y = torch.relu(self.fc(x))
        shape = y.shape
        h = self.gru(y.reshape(-1, shape[-1]), h.reshape(-1, shape[-1])).reshape(shape)
        return self.head(h), h

    def unroll(self, x: Tensor, first: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
        """x ``[T, B, N, I]``, first ``[T, B]`` (x[t] starts an episode: the state is
        zeroed before it), h0 ``[B, N, H]``. Returns outputs ``[T, B, N, O]`` and the
        hidden states after each step ``[T, B, N, H]``."""
        keep = (~first).to(h0.dtype)[..., None, None]
        h, outs, hs = h0, [], []
        for t in range(x.shape[0]):
            out, h = self.step(x[t], h * keep[t])
            outs.append(out)
            hs.append(h)
        return torch.stack(outs), torch.stack(hs)


class MlpCritic(Critic):
    """The feed-forward critic (:class:`marl.core.nets.Critic`) under the table's
    constructor; it reads one step at a time and carries nothing."""

    recurrent = False
    hidden_dim = 0

    def __init__(self, in_dim: int, out_dim: int, hidden: Sequence[int] = (128, 128),
                 gru_init: str = "torch"):
        super().__init__(in_dim, out_dim, hidden)


CRITIC_NETS: dict[str, type[nn.Module]] = {"mlp": MlpCritic, "gru": GruCritic}
"""``algo.critic_net`` -> the network class: mlp (feed-forward, the paper's), gru (a GRU
over the critic's input history, JaxMARL's MAPPO critic). Every critic kind (Q and V)
takes either."""
