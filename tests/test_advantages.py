"""Counterfactual advantage vs brute-force enumeration; exploration probabilities."""

from __future__ import annotations

import itertools

import pytest
import torch

from marl.algos.coma.advantages import counterfactual_advantage, normalise
from marl.algos.coma.critics import central_q_input_dim, central_q_inputs
from marl.core.nets import Critic
from marl.core.policy import exploration_probs


def _tiny_setup(n=3, a=3, s_dim=4, o_dim=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    critic = Critic(central_q_input_dim(s_dim, o_dim, n, a), a, hidden=(16,))
    state = torch.randn(s_dim, generator=g)
    obs = torch.randn(n, o_dim, generator=g)
    prev = torch.randint(0, a + 1, (n,), generator=g)
    logits = torch.randn(n, a, generator=g)
    return critic, state, obs, prev, logits


def joint_q(critic, state, obs, prev, joint, agent, a):
    """Q^agent(s, u) for one full joint action u, read from the agent's own-action slot."""
    x = central_q_inputs(state, obs, torch.tensor(joint), prev, a)
    return critic(x)[agent, joint[agent]].item()


@pytest.mark.parametrize("seed", [0, 1])
def test_counterfactual_baseline_matches_brute_force_enumeration(seed):
    n, a = 3, 3
    critic, state, obs, prev, logits = _tiny_setup(n, a, seed=seed)
    pi = exploration_probs(logits, 0.1)
    with torch.no_grad():
        for joint in itertools.product(range(a), repeat=n):
            u = torch.tensor(joint)
            q = critic(central_q_inputs(state, obs, u, prev, a))  # [N, A]
            adv, base = counterfactual_advantage(q, pi, u)
            for ag in range(n):
                # Brute force: replace agent ag's action by every u' in the *joint* action,
                # evaluate the critic on that joint action, weight by pi^ag(u').
                brute_base = sum(
                    pi[ag, alt].item()
                    * joint_q(critic, state, obs, prev,
                              tuple(alt if i == ag else joint[i] for i in range(n)), ag, a)
                    for alt in range(a))
                brute_adv = joint_q(critic, state, obs, prev, joint, ag, a) - brute_base
                assert base[ag].item() == pytest.approx(brute_base, abs=1e-5)
                assert adv[ag].item() == pytest.approx(brute_adv, abs=1e-5)


def test_counterfactual_hand_worked():
    q = torch.tensor([[1.0, 2.0, 4.0]])
    pi = torch.tensor([[0.5, 0.25, 0.25]])
    adv, base = counterfactual_advantage(q, pi, torch.tensor([2]))
    assert base.item() == pytest.approx(0.5 + 0.5 + 1.0)
    assert adv.item() == pytest.approx(4.0 - 2.0)


def test_masked_actions_never_contribute_to_the_baseline():
    logits = torch.tensor([[0.3, -1.0, 2.0, 0.5]])
    mask = torch.tensor([[True, False, True, True]])
    pi = exploration_probs(logits, 0.2, mask)
    assert pi[0, 1].item() == 0.0
    q = torch.tensor([[1.0, float("inf"), 3.0, -2.0]])  # garbage where masked
    adv, base = counterfactual_advantage(q, pi, torch.tensor([0]))
    want = pi[0, 0] * 1.0 + pi[0, 2] * 3.0 + pi[0, 3] * -2.0
    assert torch.isfinite(base).all()
    assert base.item() == pytest.approx(want.item())


@pytest.mark.parametrize("eps", [0.0, 0.05, 0.5, 1.0])
def test_exploration_probs_sum_to_one_with_floor(eps):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(64, 5, generator=g) * 5
    mask = torch.rand(64, 5, generator=g) < 0.7
    mask[:, 0] = True  # at least one allowed action per row
    for m in (None, mask):
        p = exploration_probs(logits, eps, m)
        torch.testing.assert_close(p.sum(-1), torch.ones(64))
        allowed = torch.ones_like(p, dtype=torch.bool) if m is None else m
        n_allowed = allowed.sum(-1, keepdim=True).float()
        assert (p[~allowed] == 0).all()
        assert (p[allowed] >= (eps / n_allowed).expand_as(p)[allowed] - 1e-7).all()


def test_one_agent_baseline_is_state_value():
    """With N = 1 the counterfactual baseline is sum_u pi(u) Q(s, u) = V(s)."""
    q = torch.tensor([[2.0, -1.0, 0.5]])
    pi = torch.tensor([[0.2, 0.3, 0.5]])
    adv, base = counterfactual_advantage(q, pi, torch.tensor([1]))
    v = (pi * q).sum(-1)
    torch.testing.assert_close(base, v)
    torch.testing.assert_close(adv, q[:, 1] - v)


def test_normalise_uses_only_masked_entries():
    x = torch.tensor([1.0, 2.0, 3.0, 100.0])
    m = torch.tensor([True, True, True, False])
    y = normalise(x, m)
    assert y[3].item() == 0.0
    assert y[:3].mean().item() == pytest.approx(0.0, abs=1e-6)
    assert y[:3].std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="must be"):
        counterfactual_advantage(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2).long())


def test_sample_categorical_matches_probabilities_and_never_draws_masked():
    from marl.core.policy import sample_categorical

    torch.manual_seed(0)
    probs = torch.tensor([[0.1, 0.0, 0.6, 0.3], [0.0, 0.0, 0.0, 1.0], [0.5, 0.5, 0.0, 0.0]])
    draws = sample_categorical(probs.expand(20000, 3, 4))  # [20000, 3]
    for row in range(3):
        freq = torch.bincount(draws[:, row], minlength=4).float() / 20000
        torch.testing.assert_close(freq, probs[row], atol=0.015, rtol=0)
        assert (freq[probs[row] == 0] == 0).all()
    # rounding: probabilities that sum to slightly less or more than one
    p = torch.tensor([[0.3333333, 0.3333333, 0.3333333, 0.0]])
    assert (sample_categorical(p.expand(50000, 4)) < 3).all()
