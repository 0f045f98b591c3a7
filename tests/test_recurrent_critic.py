"""``algo.critic_net=gru``: a GRU over the critic's input history, for every critic kind,
carried across fragments, unrolled in PPO's minibatches from the fragment's start."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from rollouts import random_rollout

from marl.algos.coma.config import ComaConfig
from marl.algos.coma.critic_training import critic_batches
from marl.algos.coma.critics import CRITIC_KINDS, CriticBatch, CriticNet, TDCritic
from marl.algos.coma.learner import Learner
from marl.algos.coma.updates.ppo import PPOOptions
from marl.config import ConfigError
from marl.core.critic_nets import GruCritic
from marl.envs.base import EnvSpec

SPEC = EnvSpec(agents=("a", "b"), obs_shape=(4,), state_dim=3, n_actions=5)
T, B, N, H = 8, 3, 2, 6


def _batch(seed: int = 0, t_len: int = T, first_at: tuple[int, int] | None = (4, 1)
           ) -> CriticBatch:
    g = torch.Generator().manual_seed(seed)
    first = torch.zeros(t_len, B, dtype=torch.bool)
    first[0] = True
    if first_at is not None:
        first[first_at] = True
    actions = torch.randint(0, 5, (t_len, B, N), generator=g)
    prev = torch.cat([torch.full((1, B, N), 5), actions[:-1]]).masked_fill(first[..., None], 5)
    return CriticBatch(torch.randn(t_len, B, 3, generator=g),
                       torch.randn(t_len, B, N, 4, generator=g), actions, prev, first=first)


def _critic(kind: str = "central_v", seed: int = 0) -> TDCritic:
    torch.manual_seed(seed)
    return TDCritic(CriticNet(kind, SPEC, [H, 5], net="gru"), lr=0.01, optimizer="adam",
                    alpha=0.99, opt_eps=1e-5, grad_clip=1e9, target_update_interval=1,
                    tau=None)


def test_the_unroll_matches_a_step_by_step_reference_with_resets():
    torch.manual_seed(0)
    net = GruCritic(7, 2, [H, 4])
    x = torch.randn(T, B, N, 7)
    first = torch.zeros(T, B, dtype=torch.bool)
    first[3, 2] = True
    h0 = torch.randn(B, N, H)
    out, hs = net.unroll(x, first, h0)
    for b in range(B):
        h = h0[b]
        for t in range(T):
            if first[t, b]:
                h = torch.zeros_like(h)
            h = net.gru(torch.relu(net.fc(x[t, b])), h)
            assert torch.allclose(hs[t, b], h, atol=1e-6)
            assert torch.allclose(out[t, b], net.head(h), atol=1e-6)


@pytest.mark.parametrize("kind", CRITIC_KINDS)
def test_the_next_situation_is_one_more_step_of_the_sequence(kind):
    """values(nxt)[t] == values(now)[t + 1] wherever the next situation is the fragment's
    next entry (no episode start there): an off-by-one in the carried state breaks it."""
    critic = _critic(kind)
    now = _batch()
    critic.begin(now)
    nxt = CriticBatch(torch.cat([now.state[1:], now.state[-1:]]),
                      torch.cat([now.obs[1:], now.obs[-1:]]),
                      torch.cat([now.actions[1:], now.actions[-1:]]), now.actions, after=now)
    v_now, v_nxt = critic.values(now), critic.values(nxt)
    cont = ~now.first[1:]  # [T - 1, B]
    assert torch.allclose(v_nxt[:-1][cont], v_now[1:][cont], atol=1e-6)
    # and the value at an episode start is not the previous episode's continuation
    assert not torch.allclose(v_nxt[3, 1], v_now[4, 1], atol=1e-4)


def test_the_carry_joins_two_fragments_into_one_sequence():
    """Two halves with the carry give the outputs of the whole (no step in between)."""
    whole, critic = _batch(t_len=T), _critic()
    critic.begin(whole)
    ref = critic.output(whole)
    halves = _critic()
    outs = []
    for sl in (slice(0, T // 2), slice(T // 2, T)):
        half = CriticBatch(whole.state[sl], whole.obs[sl], whole.actions[sl],
                           whole.prev_actions[sl], first=whole.first[sl])
        halves.begin(half)
        outs.append(halves.output(half))
    assert torch.allclose(torch.cat(outs), ref, atol=1e-6)
    # without the carry the second half would start from zeros: a different answer
    zero = _critic()
    second = CriticBatch(whole.state[T // 2:], whole.obs[T // 2:], whole.actions[T // 2:],
                         whole.prev_actions[T // 2:], first=whole.first[T // 2:])
    zero.begin(second)
    assert not torch.allclose(zero.output(second), ref[T // 2:], atol=1e-4)


def test_the_carry_is_saved_with_the_critic():
    critic = _critic()
    critic.begin(_batch())
    restored = _critic(seed=1)
    restored.load_state_dict_full(critic.state_dict_full())
    assert torch.equal(restored.h_next["net"], critic.h_next["net"])
    assert restored.h_next["net"].abs().sum() > 0


def _learner(**kw) -> Learner:
    torch.manual_seed(0)
    base = {"actor_update": "ppo", "advantage": "central_v", "critic_update": "ppo",
            "rnn": True, "actor_hidden": [H], "critic_net": "gru", "critic_hidden": [H],
            "ppo": PPOOptions(epochs=2, minibatches=3)}
    return Learner(SPEC, ComaConfig(**{**base, **kw}))


def test_ppo_minibatches_replay_the_critic_from_the_fragments_start():
    """A minibatch's critic loss before its first step equals the whole fragment's loss
    restricted to that minibatch's envs: the minibatch unroll starts from the carry."""
    learner = _learner(ppo=PPOOptions(epochs=1, minibatches=3))
    ro = replace(random_rollout(T, B, N, 4, 3, 5, (2, 0), (5, 2)), h0=torch.zeros(B, N, H))
    ro.first[0] = False  # the episodes started in an earlier fragment
    critic = learner.critics["central_v"]
    carry = torch.randn(B, N, H)
    critic.h_next = {"net": carry}  # a carry from a previous fragment
    act = learner.actor_pass(ro)
    stays, x = learner.advantage_inputs(ro, act)
    learner.critic_training.fit(learner.parts, ro, act, stays, x)
    v_full = critic.pick(x.q["central_v"], ro.actions)  # [T, B, N]
    assert torch.equal(critic.h_start["net"], carry)
    c = learner.critic_training.minibatch_inputs(learner.parts, ro, x)
    idx = torch.tensor([2])
    now, _ = critic_batches(learner.parts, ro, act.hs, stays)
    sub = CriticBatch(now.state[:, idx], now.obs[:, idx], now.actions[:, idx],
                      now.prev_actions[:, idx], now.first[:, idx], c.h0["central_v"][0, idx])
    assert torch.allclose(critic.values(sub), v_full[:, idx], atol=1e-6)


def test_a_learner_with_gru_critics_updates_and_carries_its_state():
    for kw in ({}, {"critic_update": "fragment", "actor_update": "pg", "advantage": "coma",
                    "rnn": False}):
        learner = _learner(**kw)
        ro = replace(random_rollout(T, B, N, 4, 3, 5, (2, 0), (5, 2)),
                     h0=torch.zeros(B, N, H if learner.cfg.rnn else 0))
        before = {k: v.clone() for k, v in learner.state_dict().items()}
        stats = learner.update(ro)
        kind = next(iter(learner.critics))
        assert stats.critic_loss[kind] > 0
        assert learner.critics[kind].h_next["net"].shape == (B, N, H)
        moved = [k for k, v in learner.state_dict().items() if not torch.equal(v, before[k])]
        assert any(".gru." in k for k in moved), moved


@pytest.mark.parametrize("kw,match", [
    ({"critic_update": "shared_torso", "advantage": "iac_v"}, "actor.s torso"),
    ({"rnn": False}, "rnn=true"),
    ({"critic_update": "fragment", "actor_update": "pg", "advantage": "coma",
      "optimistic_others": 0.5}, "optimistic_others"),
    ({"critic_net": "lstm"}, "choose one of"),
])
def test_bad_critic_net_choices_name_the_key(kw, match):
    with pytest.raises(ConfigError, match=f"algo.critic_net.*{match}"):
        _learner(**kw)
