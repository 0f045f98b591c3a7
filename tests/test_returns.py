"""TD(lambda) targets and discounted returns: slow reference, hand-worked cases, identities."""

from __future__ import annotations

import pytest
import torch

from marl.returns import discounted_returns, td_lambda_targets


def reference_td_lambda(rewards, next_values, terminated, truncated, gamma, lam):
    """Forward view, one element at a time: G^lambda as the lambda-weighted mix of n-step
    returns up to the horizon (first episode end at or after t, or the fragment end)."""
    t_len = rewards.shape[0]
    out = torch.zeros_like(rewards)
    flat_r = rewards.reshape(t_len, -1)
    flat_v = next_values.reshape(t_len, -1)
    def flags(x):
        x = x.reshape(x.shape + (1,) * (rewards.dim() - x.dim()))
        return x.expand_as(rewards).reshape(t_len, -1)

    term, trunc = flags(terminated), flags(truncated)
    flat_out = out.reshape(t_len, -1)
    for j in range(flat_r.shape[1]):
        for t in range(t_len):
            k = t
            while k < t_len - 1 and not (term[k, j] or trunc[k, j]):
                k += 1
            h = k - t + 1

            def n_step(n, t=t, j=j, k=k):
                g = sum(gamma**i * flat_r[t + i, j].item() for i in range(n))
                end = t + n - 1
                boot = 0.0 if (end == k and term[k, j]) else flat_v[end, j].item()
                return g + gamma**n * boot

            g_lam = sum((1 - lam) * lam ** (n - 1) * n_step(n) for n in range(1, h)) \
                + lam ** (h - 1) * n_step(h)
            flat_out[t, j] = g_lam
    return out


def random_case(t_len=12, b=3, n=2, p_term=0.1, p_trunc=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(t_len, b, n, generator=g)
    values = torch.randn(t_len, b, n, generator=g)
    u = torch.rand(t_len, b, generator=g)
    terminated = u < p_term
    truncated = (u >= p_term) & (u < p_term + p_trunc)
    return rewards, values, terminated, truncated


@pytest.mark.parametrize("gamma,lam", [(0.99, 0.8), (0.9, 0.0), (0.5, 1.0), (1.0, 0.6)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_td_lambda_matches_forward_view_reference(gamma, lam, seed):
    r, v, term, trunc = random_case(seed=seed)
    got = td_lambda_targets(r, v, term, trunc, gamma, lam)
    want = reference_td_lambda(r, v, term, trunc, gamma, lam)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_td_lambda_per_agent_flags_match_reference():
    r, v, _, _ = random_case(t_len=10, b=2, n=3, seed=5)
    g = torch.Generator().manual_seed(9)
    term = torch.rand(10, 2, 3, generator=g) < 0.15
    trunc = (torch.rand(10, 2, 3, generator=g) < 0.1) & ~term
    got = td_lambda_targets(r, v, term, trunc, 0.95, 0.7)
    torch.testing.assert_close(got, reference_td_lambda(r, v, term, trunc, 0.95, 0.7),
                               rtol=1e-5, atol=1e-5)


def _hand_case():
    rewards = torch.tensor([1.0, 0.0, 2.0]).view(3, 1)
    next_values = torch.tensor([0.5, 1.0, 3.0]).view(3, 1)
    no = torch.zeros(3, 1, dtype=torch.bool)
    return rewards, next_values, no


def test_td_lambda_hand_worked_no_episode_end():
    r, v, no = _hand_case()
    # G2 = 2 + .9*3 = 4.7; G1 = .9*(1 + .5*(4.7-1)) = 2.565; G0 = 1 + .9*(.5 + .5*(2.565-.5))
    got = td_lambda_targets(r, v, no, no, 0.9, 0.5).flatten()
    torch.testing.assert_close(got, torch.tensor([2.37925, 2.565, 4.7]))


def test_td_lambda_hand_worked_terminal_and_truncated():
    r, v, no = _hand_case()
    term = no.clone()
    term[1] = True
    # terminated at 1: G1 = 0 (no bootstrap); G0 = 1 + .9*(.5 + .5*(0 - .5)) = 1.225
    got = td_lambda_targets(r, v, term, no, 0.9, 0.5).flatten()
    torch.testing.assert_close(got, torch.tensor([1.225, 0.0, 4.7]))
    # truncated at 1: G1 = .9 * 1.0 = .9 (bootstrap, recursion stops); G0 = 1 + .9*(.5+.2)
    got = td_lambda_targets(r, v, no, term, 0.9, 0.5).flatten()
    torch.testing.assert_close(got, torch.tensor([1.63, 0.9, 4.7]))


def test_lambda_zero_is_one_step_td():
    r, v, term, trunc = random_case(seed=3)
    got = td_lambda_targets(r, v, term, trunc, 0.97, 0.0)
    want = r + 0.97 * (~term).float()[..., None] * v
    torch.testing.assert_close(got, want)


def test_lambda_one_is_monte_carlo_return():
    r, v, term, trunc = random_case(seed=4)
    got = td_lambda_targets(r, v, term, trunc, 0.95, 1.0)
    # Monte-Carlo return by an explicit backward loop, bootstrapping only where the sum
    # is cut without a terminal state (truncation, fragment end).
    want = torch.zeros_like(r)
    running = torch.zeros_like(r[0])
    for t in reversed(range(r.shape[0])):
        cut = trunc[t] | torch.tensor(t == r.shape[0] - 1)
        nxt = torch.where(term[t][:, None], torch.zeros_like(running),
                          torch.where(cut[:, None], v[t], running))
        running = r[t] + 0.95 * nxt
        want[t] = running
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(discounted_returns(r, term, trunc, 0.95, bootstrap=v), want)


@pytest.mark.parametrize("end", ["terminated", "truncated"])
def test_splitting_at_episode_end_changes_nothing(end):
    r, v, _, _ = random_case(t_len=10, seed=7)
    term = torch.zeros(10, 3, dtype=torch.bool)
    trunc = torch.zeros(10, 3, dtype=torch.bool)
    (term if end == "terminated" else trunc)[4] = True
    whole = td_lambda_targets(r, v, term, trunc, 0.9, 0.7)
    first = td_lambda_targets(r[:5], v[:5], term[:5], trunc[:5], 0.9, 0.7)
    second = td_lambda_targets(r[5:], v[5:], term[5:], trunc[5:], 0.9, 0.7)
    torch.testing.assert_close(whole, torch.cat([first, second]))


def test_discounted_returns_reset_at_episode_end():
    r = torch.tensor([1.0, 1.0, 1.0, 1.0]).view(4, 1)
    term = torch.tensor([False, True, False, False]).view(4, 1)
    no = torch.zeros(4, 1, dtype=torch.bool)
    got = discounted_returns(r, term, no, 0.5).flatten()
    torch.testing.assert_close(got, torch.tensor([1.5, 1.0, 1.5, 1.0]))


def test_shape_errors_name_the_problem():
    r, v, term, trunc = random_case()
    with pytest.raises(ValueError, match="values must have the rewards' shape"):
        td_lambda_targets(r, v[:, :1], term, trunc, 0.9, 0.5)
    with pytest.raises(ValueError, match="terminated must be"):
        td_lambda_targets(r, v, term[:-1], trunc, 0.9, 0.5)
