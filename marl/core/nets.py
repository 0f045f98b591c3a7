"""Networks: decentralised actors (MLP / GRU, vector or pixel torso) and critics.

Shape letters: T time, B envs, N agents, O observation features, S state features,
A actions, H hidden units.

Actor input, as in the COMA paper (Sec. 5): the agent's own observation, a one-hot of
its id and a one-hot of its previous action. A linear layer applied to a concatenation
of one-hots equals the sum of that layer's columns picked by the ones, so the first
layer here is ``W_o o + E_id[a] + E_u[u_prev]`` with two embedding tables: the same
function as the concatenated input, without building a one-hot tensor every step.
``u_prev == A`` means "no previous action" (episode start) and maps to a zero row,
exactly like an all-zero one-hot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, out_gain: float = 1.0) -> nn.Sequential:
    """ReLU MLP with orthogonal init; the last layer is scaled by ``out_gain``."""
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [_ortho(nn.Linear(d, h), math.sqrt(2)), nn.ReLU()]
        d = h
    layers.append(_ortho(nn.Linear(d, out_dim), out_gain))
    return nn.Sequential(*layers)


def _ortho(layer: nn.Linear | nn.Conv2d, gain: float) -> nn.Module:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


CONV_TORSOS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "nature": ((32, 8, 4), (64, 4, 2), (64, 3, 1)),
    "dqn2013": ((16, 8, 4), (32, 4, 2)),
}
"""Conv torso name (``algo.conv_torso``) -> its layers as (channels, kernel, stride), each
followed by a ReLU. ``nature``: Mnih et al. 2015 (Nature DQN, CleanRL's PPO), ~9.3M
multiply-adds per 84x84x4 frame with its 512-unit layer; ``dqn2013``: Mnih et al. 2013
(the first DQN, also A3C's), ~3M with a 256-unit layer: ~3x cheaper."""


class ObsEncoder(nn.Module):
    """Own observation -> first hidden pre-activation ``[..., H]``.

    Vectors (``obs_shape == (O,)``) go through a linear layer; images
    (``(C, H, W)``, uint8 or float in [0, 255] / [0, 1]) through the conv stack
    ``CONV_TORSOS[torso]`` then a linear layer.
    """

    def __init__(self, obs_shape: Sequence[int], hidden: int, pixel_scale: float = 1.0,
                 torso: str = "nature", bf16: bool = False):
        super().__init__()
        if torso not in CONV_TORSOS:
            raise ValueError(f"conv torso {torso!r} unknown: choose one of {list(CONV_TORSOS)}")
        self.obs_shape = tuple(obs_shape)
        self.pixel_scale = pixel_scale
        self.bf16 = bf16
        if len(self.obs_shape) == 1:
            self.conv = None
            self.fc = _ortho(nn.Linear(self.obs_shape[0], hidden), math.sqrt(2))
        elif len(self.obs_shape) == 3:
            layers: list[nn.Module] = []
            c = self.obs_shape[0]
            for out, kernel, stride in CONV_TORSOS[torso]:
                layers += [_ortho(nn.Conv2d(c, out, kernel, stride=stride), math.sqrt(2)),
                           nn.ReLU()]
                c = out
            self.conv = nn.Sequential(*layers, nn.Flatten()).to(
                memory_format=torch.channels_last)
            with torch.no_grad():
                n_flat = self.conv(torch.zeros(1, *self.obs_shape)).shape[-1]
            self.fc = _ortho(nn.Linear(n_flat, hidden), math.sqrt(2))
        else:
            raise ValueError(
                f"observation shape {self.obs_shape} not supported: use a vector (O,) "
                "or an image (C, H, W)"
            )

    def forward(self, obs: Tensor) -> Tensor:
        if self.conv is None:
            return self.fc(obs)
        lead = obs.shape[: -3]
        # channels-last: oneDNN's CPU convolutions run ~25% faster on it (CPU time of a
        # Nature-DQN forward + backward, 256 frames); one copy converts and lays out.
        # bf16: the conv stack runs in bfloat16 under autocast (weights stay float32;
        # pixels 0..255 are exact in bfloat16), its output goes back to float32 for the
        # linear layer and the heads.
        dtype = torch.bfloat16 if self.bf16 else torch.float32
        x = obs.reshape(-1, *self.obs_shape).to(dtype, memory_format=torch.channels_last)
        x = x.mul_(self.pixel_scale) if self.pixel_scale != 1.0 else x
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            z = self.conv(x)
        return self.fc(z.float().reshape(x.shape[0], -1)).reshape(*lead, -1)


ACTOR_INPUTS = ("agent_id", "last_action")
"""What an actor may see besides its observation (:class:`Actor`'s ``agent_id`` and
``last_action``)."""


class Actor(nn.Module):
    """Decentralised policy pi^a(u | tau^a) -> logits ``[..., N, A]``.

    Args:
        obs_shape: per-agent observation shape.
        n_agents: N; with ``shared=True`` one network serves every agent (the agent id
            tells them apart), else each agent has its own parameters.
        n_actions: A.
        hidden: MLP widths; with ``rnn`` the first width is the GRU size and the
            remaining widths follow it.
        rnn: GRU actor (COMA's default in the paper) instead of a feed-forward one.
        agent_id: include the agent's one-hot id in the input.
        last_action: include the agent's previous action, one-hot, in the input.
        value_head: also a value head V(o^a, u^a_prev, a) on the same torso
            (:meth:`unroll_values`): the shared torso of a one-agent pixel actor-critic.
        conv_torso: image observations: the conv stack, a key of :data:`CONV_TORSOS`.
        conv_bf16: run that conv stack in bfloat16 (autocast; see :class:`ObsEncoder`).
    """

    def __init__(
        self,
        obs_shape: Sequence[int],
        n_agents: int,
        n_actions: int,
        hidden: Sequence[int] = (64, 64),
        rnn: bool = False,
        shared: bool = True,
        agent_id: bool = True,
        last_action: bool = True,
        pixel_scale: float = 1.0,
        init: str = "orthogonal",
        value_head: bool = False,
        conv_torso: str = "nature",
        conv_bf16: bool = False,
        gru_init: str = "torch",
    ):
        super().__init__()
        if not hidden:
            raise ValueError("actor needs at least one hidden layer")
        if init not in ("orthogonal", "mirrored"):
            raise ValueError(f"actor init {init!r} unknown: use orthogonal or mirrored")
        self.n_agents, self.n_actions, self.rnn, self.shared = n_agents, n_actions, rnn, shared
        self.has_value = value_head
        self.hidden_dim = hidden[0]
        copies = 1 if shared else n_agents
        self.nets = nn.ModuleList(
            _ActorNet(obs_shape, n_agents, n_actions, hidden, rnn, agent_id, last_action,
                      pixel_scale, value_head, conv_torso, conv_bf16)
            for _ in range(copies)
        )
        if init == "mirrored":
            for net in self.nets:
                mirror_hidden_units(net)
        if rnn and GRU_INITS[gru_init] is not None:
            for net in self.nets:
                GRU_INITS[gru_init](net.gru)
        self.register_buffer("agent_idx", torch.arange(n_agents), persistent=False)

    def initial_hidden(self, batch: int) -> Tensor:
        """``[B, N, H]`` zeros (an MLP actor carries an empty ``[B, N, 0]`` tensor)."""
        return torch.zeros(batch, self.n_agents, self.hidden_dim if self.rnn else 0,
                           device=next(self.parameters()).device)

    def forward(self, obs: Tensor, prev_action: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """One step. obs ``[B, N, *O]``, prev_action ``[B, N]`` (A = none), h ``[B, N, H]``.

        Returns logits ``[B, N, A]`` and the next hidden state ``[B, N, H]``.
        """
        logits, _, h = self.step(obs, prev_action, h, values=False)
        return logits, h

    def step(self, obs: Tensor, prev_action: Tensor, h: Tensor, values: bool
             ) -> tuple[Tensor, Tensor | None, Tensor]:
        """One step with the value head's output: logits ``[B, N, A]``, values ``[B, N]``
        (None unless ``values``; an actor built with a value head), next h."""
        if self.shared:
            return self.nets[0](obs, self.agent_idx, prev_action, h, values)
        outs = [
            net(obs[:, a : a + 1], self.agent_idx[a : a + 1], prev_action[:, a : a + 1],
                h[:, a : a + 1], values)
            for a, net in enumerate(self.nets)
        ]
        v = torch.cat([o[1] for o in outs], 1) if values else None
        return torch.cat([o[0] for o in outs], 1), v, torch.cat([o[2] for o in outs], 1)

    def unroll(
        self, obs: Tensor, prev_action: Tensor, first: Tensor, h0: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Unroll over a fragment, resetting the hidden state at episode starts.

        obs ``[T, B, N, *O]``, prev_action ``[T, B, N]``, first ``[T, B]`` (obs[t] starts
        an episode), h0 ``[B, N, H]`` (state before step 0, used unless first[0]).
        Returns logits ``[T, B, N, A]`` and hidden states after each step ``[T, B, N, H]``.
        """
        logits, _, hs = self._unroll(obs, prev_action, first, h0, values=False)
        return logits, hs

    def unroll_values(
        self, obs: Tensor, prev_action: Tensor, first: Tensor, h0: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`unroll` plus the value head from the same torso pass (``value_head``):
        logits ``[T, B, N, A]``, values ``[T, B, N]``, hidden states ``[T, B, N, H]``."""
        if not self.has_value:
            raise RuntimeError("this actor was built without a value head")
        logits, v, hs = self._unroll(obs, prev_action, first, h0, values=True)
        assert v is not None
        return logits, v, hs

    def _unroll(self, obs: Tensor, prev_action: Tensor, first: Tensor, h0: Tensor,
                values: bool) -> tuple[Tensor, Tensor | None, Tensor]:
        t_len, b = obs.shape[:2]
        if not self.rnn:  # feed-forward: one batched call over T*B
            flat = obs.reshape(t_len * b, *obs.shape[2:])
            empty = h0.new_zeros(t_len * b, self.n_agents, 0)
            logits, v, _ = self.step(flat, prev_action.reshape(t_len * b, -1), empty, values)
            v = None if v is None else v.reshape(t_len, b, -1)
            return (logits.reshape(t_len, b, *logits.shape[1:]), v,
                    h0.new_zeros(t_len, *h0.shape))
        keep = (~first).to(h0.dtype)[..., None, None]  # [T, B, 1, 1]
        h, logits, vs, hs = h0, [], [], []
        for t in range(t_len):
            lg, v, h = self.step(obs[t], prev_action[t], h * keep[t], values)
            logits.append(lg)
            vs.append(v)
            hs.append(h)
        return torch.stack(logits), torch.stack(vs) if values else None, torch.stack(hs)


def flax_gru_init(gru: nn.GRUCell) -> None:
    """flax's ``nn.GRUCell`` defaults on a torch GRU cell: each gate's input kernel
    lecun-normal (a normal truncated at 2 s.d., variance 1 / fan_in after the
    truncation's correction), each gate's recurrent kernel orthogonal (gain 1), every
    bias zero. torch's ``b_hn`` sits inside ``r * (W_hn h + b_hn)`` as flax's does."""
    h = gru.hidden_size
    std = (1.0 / gru.input_size) ** 0.5 / 0.87962566103423978
    with torch.no_grad():
        for w in gru.weight_ih.split(h):
            nn.init.trunc_normal_(w, std=std, a=-2 * std, b=2 * std)
        for w in gru.weight_hh.split(h):
            nn.init.orthogonal_(w)
        gru.bias_ih.zero_()
        gru.bias_hh.zero_()


GRU_INITS = {"torch": None, "flax": flax_gru_init}
"""``algo.gru_init``: torch's default (uniform +-1/sqrt(H) everywhere), or flax's."""


def mirror_hidden_units(net: _ActorNet) -> None:
    """"Looks-linear" init (Balduzzi et al., 2017): in every hidden ReLU layer, units
    ``h..2h-1`` start as the negation of units ``0..h-1`` (``h = width // 2``), so for any
    input one unit of each pair is active. Narrow actors on constant inputs (the bandit's
    5-unit layers) otherwise start with a whole layer dead for some seeds (6 of seeds
    0..63 with [5, 5]) and then only the output bias can learn."""
    with torch.no_grad():
        first = [] if net.encoder.conv is not None else [net.encoder.fc.weight]
        first += [emb.weight.T for emb in (net.id_emb, net.act_emb) if emb is not None]
        hidden = [m.weight for m in list(net.head)[:-1] if isinstance(m, nn.Linear)]
        for w in first + hidden:  # [units, inputs]; embeddings transposed to match
            h = w.shape[0] // 2
            w[h:2 * h] = -w[:h]


class _ActorNet(nn.Module):
    def __init__(self, obs_shape, n_agents, n_actions, hidden, rnn, agent_id, last_action,
                 pixel_scale, value_head=False, conv_torso="nature", conv_bf16=False):
        super().__init__()
        h0 = hidden[0]
        self.encoder = ObsEncoder(obs_shape, h0, pixel_scale, conv_torso, conv_bf16)
        self.id_emb = nn.Embedding(n_agents, h0) if agent_id else None
        # row A is "no previous action": kept at zero, like an all-zero one-hot.
        self.act_emb = nn.Embedding(n_actions + 1, h0, padding_idx=n_actions) if last_action \
            else None
        for emb in (self.id_emb, self.act_emb):
            if emb is not None:
                nn.init.normal_(emb.weight, std=0.1)
                if emb.padding_idx is not None:
                    with torch.no_grad():
                        emb.weight[emb.padding_idx].zero_()
        self.gru = nn.GRUCell(h0, h0) if rnn else None
        self.head = mlp(h0, hidden[1:], n_actions, out_gain=0.01)
        self.value = mlp(h0, hidden[1:], 1, out_gain=1.0) if value_head else None

    def forward(self, obs, agent_idx, prev_action, h, values=False):
        x = self.encoder(obs)  # [B, N, H]
        if self.id_emb is not None:
            x = x + self.id_emb(agent_idx)
        if self.act_emb is not None:
            x = x + self.act_emb(prev_action)
        x = torch.relu(x)
        if self.gru is not None:
            shape = x.shape
            x = self.gru(x.reshape(-1, shape[-1]), h.reshape(-1, shape[-1])).reshape(shape)
            h = x
        if not values:
            return self.head(x), None, h
        return self.head(x), self.value(x).squeeze(-1), h


class Critic(nn.Module):
    """An MLP critic over a prepared input vector: ``[..., I] -> [..., out_dim]``.

    The input layout (which agents' actions and observations a critic may see) is the
    business of :mod:`marl.algos.coma.critics`; keeping it out of the network makes the
    information flow testable on the inputs themselves.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: Sequence[int] = (128, 128)):
        super().__init__()
        self.net = mlp(in_dim, hidden, out_dim, out_gain=1.0)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
