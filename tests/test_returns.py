"""TD(lambda) targets and discounted returns: slow reference, hand-worked cases, identities."""

from __future__ import annotations

import pytest
import torch

from marl.core.returns import discounted_returns, td_lambda_targets, team_rewards


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


# ------------------------------------------------- agents that leave: the team's return
def reference_team_td_lambda(rewards, next_values, terminated, truncated, stays, gamma, lam):
    """One scalar at a time, backwards: an agent that does not stay after t takes the
    mean next value and mean target of the agents that stay (nothing if none stays)."""
    t_len, b_len, n_len = rewards.shape
    g = {}
    out = torch.zeros_like(rewards)
    for t in reversed(range(t_len)):
        for b in range(b_len):
            term, cut = bool(terminated[t, b]), bool(truncated[t, b]) or t == t_len - 1
            stayers = [k for k in range(n_len) if stays[t, b, k]]
            for a in range(n_len):
                r = float(rewards[t, b, a])
                if term:
                    g[t, b, a] = r
                    continue
                if stays[t, b, a]:
                    v, nxt = float(next_values[t, b, a]), (0.0 if cut else g[t + 1, b, a])
                elif stayers:
                    v = sum(float(next_values[t, b, k]) for k in stayers) / len(stayers)
                    nxt = 0.0 if cut else sum(g[t + 1, b, k] for k in stayers) / len(stayers)
                else:
                    v, nxt = 0.0, 0.0
                c = 0.0 if cut else 1.0
                g[t, b, a] = r + gamma * (v + lam * c * (nxt - v))
            for a in range(n_len):
                out[t, b, a] = g[t, b, a]
    return out


def dying_case(t_len=14, b=3, n=3, seed=0):
    """Random rewards/values/ends where agents die and stay dead until their episode
    ends: stays[t] = alive[t + 1] (final-alive flags at truncations, random too)."""
    r, v, term, trunc = random_case(t_len=t_len, b=b, n=n, p_term=0.08, p_trunc=0.08,
                                    seed=seed)
    g = torch.Generator().manual_seed(100 + seed)
    alive = torch.ones(t_len + 1, b, n, dtype=torch.bool)
    for t in range(t_len):
        keep = alive[t] & (torch.rand(b, n, generator=g) > 0.15)
        done = term[t] | trunc[t]
        alive[t + 1] = torch.where(done[:, None], True, keep)
    final_alive = alive[:-1] & (torch.rand(t_len, b, n, generator=g) > 0.3)
    stays = torch.where(trunc[..., None], final_alive, alive[1:])
    return r, v, term, trunc, stays


@pytest.mark.parametrize("gamma,lam", [(0.99, 0.8), (0.9, 0.0), (0.5, 1.0)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_team_continuation_matches_slow_reference(gamma, lam, seed):
    r, v, term, trunc, stays = dying_case(seed=seed)
    assert (~stays & ~term[..., None]).any()  # the case has agents that leave
    got = td_lambda_targets(r, v, term, trunc, gamma, lam, stays=stays)
    want = reference_team_td_lambda(r, v, term, trunc, stays, gamma, lam)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_team_continuation_hand_worked():
    """Two agents, no episode end; agent 1 dies after step 0 (its later records are
    garbage). gamma = lam = 0.5.
    Agent 0: G2 = 3 + .5*8 = 7; G1 = 2 + .5*(6 + .5*(7 - 6)) = 5.25;
             G0 = 1 + .5*(4 + .5*(5.25 - 4)) = 3.3125.
    Agent 1 at its last step: G0 = 0 + .5*(4 + .5*(5.25 - 4)) = 2.3125 (agent 0's value
    and target after t = 0, the team's), where cutting at death would give 0."""
    r = torch.tensor([[1.0, 0.0], [2.0, 9.0], [3.0, 9.0]]).view(3, 1, 2)
    v = torch.tensor([[4.0, 100.0], [6.0, 100.0], [8.0, 100.0]]).view(3, 1, 2)
    no = torch.zeros(3, 1, dtype=torch.bool)
    stays = torch.tensor([[True, False]] * 3).view(3, 1, 2)
    got = td_lambda_targets(r, v, no, no, 0.5, 0.5, stays=stays)
    torch.testing.assert_close(got[:, 0, 0], torch.tensor([3.3125, 5.25, 7.0]))
    assert got[0, 0, 1].item() == pytest.approx(2.3125)


def test_team_continuation_on_the_forward_view_of_the_survivor():
    """Agent 1 dies at t = 4 of 10 (no episode end), agent 0 lives on: agent 0's targets
    are the plain forward-view lambda-returns, and agent 1's last target is
    ``r + gamma ((1 - lam) v0_5 + lam G0_5)`` built on them."""
    r, v, _, _ = random_case(t_len=10, b=1, n=2, seed=11)
    no = torch.zeros(10, 1, dtype=torch.bool)
    stays = torch.ones(10, 1, 2, dtype=torch.bool)
    stays[4:, 0, 1] = False
    got = td_lambda_targets(r, v, no, no, 0.9, 0.7, stays=stays)
    plain = reference_td_lambda(r, v, no, no, 0.9, 0.7)
    torch.testing.assert_close(got[:, :, 0], plain[:, :, 0], rtol=1e-5, atol=1e-5)
    want = r[4, 0, 1] + 0.9 * ((1 - 0.7) * v[4, 0, 0] + 0.7 * plain[5, 0, 0])
    assert got[4, 0, 1].item() == pytest.approx(want.item(), rel=1e-5)


def test_shared_reward_dead_agent_gets_the_teams_target():
    """With one team reward and critics that agree, an agent's last action before its
    death is worth exactly what the survivors' same-step actions are worth."""
    r, v, term, trunc, stays = dying_case(seed=4)
    r = r[..., :1].expand_as(r).clone()
    v = v[..., :1].expand_as(v).clone()
    got = td_lambda_targets(r, v, term, trunc, 0.95, 0.8, stays=stays)
    left = ~stays & ~term[..., None]
    t, b, a = left.nonzero(as_tuple=True)
    some_stay = stays[t, b].any(-1)
    assert some_stay.any()
    team = (got[t, b] * stays[t, b]).sum(-1) / stays[t, b].sum(-1).clamp_min(1)
    torch.testing.assert_close(got[t, b, a][some_stay], team[some_stay])


def test_all_staying_is_plain_td_lambda():
    r, v, term, trunc = random_case(n=3, seed=6)
    stays = torch.ones_like(r, dtype=torch.bool)
    torch.testing.assert_close(td_lambda_targets(r, v, term, trunc, 0.9, 0.7, stays=stays),
                               td_lambda_targets(r, v, term, trunc, 0.9, 0.7))


def test_what_is_recorded_after_an_agent_left_reaches_no_target():
    """inf / nan rewards and values of a dead agent change no finite target: not the
    survivors', not its own last one."""
    r, v, term, trunc, stays = dying_case(seed=7)
    acted = torch.ones_like(stays)
    acted[1:] = stays[:-1] | (term | trunc)[:-1, :, None]  # alive at t
    base = td_lambda_targets(r, v, term, trunc, 0.9, 0.8, stays=stays)
    r2, v2 = r.clone(), v.clone()
    r2[~acted] = float("nan")
    v2[~stays] = float("inf")
    got = td_lambda_targets(r2, v2, term, trunc, 0.9, 0.8, stays=stays)
    torch.testing.assert_close(got[acted], base[acted])


def test_stays_shape_is_checked():
    r, v, term, trunc = random_case()
    with pytest.raises(ValueError, match="stays must be"):
        td_lambda_targets(r, v, term, trunc, 0.9, 0.5, stays=torch.ones(3, dtype=torch.bool))


def test_team_rewards_hand_worked():
    r = torch.tensor([1.0, 2.0, 4.0]).view(1, 1, 3)
    acted = torch.tensor([True, True, False]).view(1, 1, 3)  # agent 2 dead: 4 is padding
    torch.testing.assert_close(team_rewards(r, acted, "sum").flatten(),
                               torch.tensor([3.0, 3.0, 3.0]))
    torch.testing.assert_close(team_rewards(r, acted, "mean").flatten(),
                               torch.tensor([1.5, 1.5, 1.5]))
    assert team_rewards(r, acted, "off") is r
    with pytest.raises(ValueError, match="'total' unknown"):
        team_rewards(r, acted, "total")
