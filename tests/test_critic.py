"""Information flow into the critics, and the actor's input handling."""

from __future__ import annotations

import pytest
import torch

from marl.algos.coma.critics import central_q_inputs, central_v_inputs, local_inputs
from marl.core.nets import Actor

N, A, S, O, B = 3, 4, 5, 6, 7  # noqa: E741 - the shape letters of the docs


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, S, generator=g), torch.randn(B, N, O, generator=g),
            torch.randint(0, A, (B, N), generator=g), torch.randint(0, A + 1, (B, N), generator=g))


def test_own_action_never_reaches_own_critic_input_others_do():
    state, obs, actions, prev = _batch()
    x = central_q_inputs(state, obs, actions, prev, A)
    for a in range(N):
        changed = actions.clone()
        changed[:, a] = (changed[:, a] + 1) % A
        y = central_q_inputs(state, obs, changed, prev, A)
        torch.testing.assert_close(y[:, a], x[:, a], rtol=0, atol=0)  # own row: identical
        for b in range(N):
            if b != a:  # every other agent's row sees a's new action
                assert (y[:, b] != x[:, b]).any(dim=-1).all()


def test_central_critic_sees_state_own_obs_prev_joint_action_and_id():
    state, obs, actions, prev = _batch(1)
    x = central_q_inputs(state, obs, actions, prev, A)
    assert x.shape == (B, N, S + O + 2 * N * A + N)
    # own observation only in own row
    obs2 = obs.clone()
    obs2[:, 0] += 1.0
    y = central_q_inputs(state, obs2, actions, prev, A)
    assert (y[:, 0] != x[:, 0]).any(-1).all()
    torch.testing.assert_close(y[:, 1:], x[:, 1:], rtol=0, atol=0)
    # previous joint action reaches every row, including the agent's own previous action
    prev2 = prev.clone()
    prev2[:, 0] = (prev2[:, 0] + 1) % (A + 1)
    y = central_q_inputs(state, obs, actions, prev2, A)
    assert (y != x).any(-1).all()
    # agent ids differ between rows
    ids = x[..., -N:]
    torch.testing.assert_close(ids[0], torch.eye(N))
    # "no previous action" (A) is an all-zero one-hot
    none = torch.full((B, N), A)
    z = central_q_inputs(state, obs, actions, none, A)
    prev_block = z[..., S + O + N * A: S + O + 2 * N * A]
    assert (prev_block == 0).all()


def test_independent_critic_sees_nothing_of_other_agents():
    _, obs, _, prev = _batch(2)
    x = local_inputs(obs, prev, A)
    obs2, prev2 = obs.clone(), prev.clone()
    obs2[:, 1:] += 3.0
    prev2[:, 1:] = (prev2[:, 1:] + 1) % (A + 1)
    y = local_inputs(obs2, prev2, A)
    torch.testing.assert_close(y[:, 0], x[:, 0], rtol=0, atol=0)
    assert (y[:, 1:] != x[:, 1:]).any(-1).all()


def test_central_v_input_is_state_and_id_only():
    state, *_ = _batch(3)
    x = central_v_inputs(state, N)
    assert x.shape == (B, N, S + N)
    torch.testing.assert_close(x[:, 0, :S], state)


def test_actor_embedding_equals_one_hot_linear_layer():
    """The first layer W_o o + E_id[a] + E_u[u_prev] equals a linear layer applied to the
    concatenation [o, onehot(id), onehot(u_prev)], with 'no previous action' all zeros."""
    torch.manual_seed(0)
    actor = Actor((O,), N, A, hidden=(8,), rnn=False)
    net = actor.nets[0]
    w = torch.cat([net.encoder.fc.weight, net.id_emb.weight.T, net.act_emb.weight[:A].T], 1)
    _, obs, _, prev = _batch(4)
    onehot_prev = torch.nn.functional.one_hot(prev, A + 1)[..., :A].float()
    concat = torch.cat([obs, torch.eye(N).expand(B, N, N), onehot_prev], -1)
    want = torch.relu(concat @ w.T + net.encoder.fc.bias)
    got = torch.relu(net.encoder(obs) + net.id_emb(actor.agent_idx) + net.act_emb(prev))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("inputs", [[], ["agent_id"], ["last_action"], ["agent_id", "last_action"]])
def test_actor_sees_only_the_inputs_it_is_given(inputs):
    """algo.actor_inputs through the learner: an input left out changes no logit (two
    agents with one observation act alike without their id), one kept does."""
    from conftest import TINY, compose_config

    from marl.build import build

    cfg = compose_config([*TINY, f"algo.actor_inputs=[{','.join(inputs)}]"])
    _, learner, _ = build(cfg, 2, seed=0)
    actor = learner.actor
    n, a = actor.n_agents, actor.n_actions
    obs = torch.randn(1, 1, *learner.spec.obs_shape).expand(2, n, *learner.spec.obs_shape)
    prev = torch.tensor([[0] * n, [a - 1] * n])  # every agent: action 0, then action A-1
    logits, _ = actor(obs, prev, actor.initial_hidden(2))
    agents_alike = torch.allclose(logits[0, 0], logits[0, 1])
    prev_ignored = torch.allclose(logits[0], logits[1])
    assert agents_alike is ("agent_id" not in inputs)
    assert prev_ignored is ("last_action" not in inputs)


def test_gru_unroll_matches_step_by_step_with_resets():
    torch.manual_seed(1)
    actor = Actor((O,), N, A, hidden=(8, 8), rnn=True)
    t_len = 6
    obs = torch.randn(t_len, B, N, O)
    prev = torch.randint(0, A + 1, (t_len, B, N))
    first = torch.rand(t_len, B) < 0.3
    h0 = torch.randn(B, N, 8)
    logits, hs = actor.unroll(obs, prev, first, h0)
    h = h0
    for t in range(t_len):
        h = h * (~first[t]).float()[:, None, None]
        lg, h = actor(obs[t], prev[t], h)
        torch.testing.assert_close(logits[t], lg)
        torch.testing.assert_close(hs[t], h)


def test_unshared_actors_have_separate_parameters():
    torch.manual_seed(2)
    actor = Actor((O,), N, A, hidden=(8,), shared=False)
    assert len(actor.nets) == N
    _, obs, _, prev = _batch(5)
    logits, _ = actor(obs, prev, actor.initial_hidden(B))
    # changing agent 0's network changes only agent 0's logits
    with torch.no_grad():
        actor.nets[0].head[-1].bias += 1.0
    logits2, _ = actor(obs, prev, actor.initial_hidden(B))
    assert (logits2[:, 0] != logits[:, 0]).all()
    torch.testing.assert_close(logits2[:, 1:], logits[:, 1:])


def test_mirrored_init_never_starts_with_a_dead_layer():
    """A constant input (the bandit's) through 5-unit ReLU layers: the default init
    leaves a whole layer dead for some seeds, the mirrored one for none."""
    obs = torch.ones(1, 1, 1)
    none = torch.full((1, 1), 4)
    dead = {"orthogonal": 0, "mirrored": 0}
    for init in dead:
        for seed in range(64):
            torch.manual_seed(seed)
            net = Actor((1,), 1, 4, hidden=(5, 5), init=init).nets[0]
            h1 = torch.relu(net.encoder(obs) + net.id_emb(torch.zeros(1, dtype=torch.long))
                            + net.act_emb(none))
            h2 = torch.relu(net.head[0](h1))
            dead[init] += int(not (h1 > 0).any() or not (h2 > 0).any())
    assert dead["orthogonal"] > 0 and dead["mirrored"] == 0


def test_guarded_step_refuses_non_finite_loss_and_gradient_before_stepping():
    from marl.algos.coma.critics import guarded_step
    from marl.io.errors import NonFiniteError

    net = torch.nn.Linear(2, 1)
    with torch.no_grad():
        net.weight.fill_(0.5)
        net.bias.fill_(0.0)  # net(x) = 1 > 0
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    before = [p.detach().clone() for p in net.parameters()]
    x = torch.ones(1, 2)
    with pytest.raises(NonFiniteError, match="actor loss is nan"):
        guarded_step(net(x).sum() * float("nan"), net.parameters(), opt, 1.0, "actor")
    # a finite loss whose gradient is not: inf * 0 in the backward pass
    with pytest.raises(NonFiniteError, match="critic central_q gradient norm is"):
        guarded_step((net(x) * torch.tensor(float("inf"))).clamp(max=1.0).sum(),
                     net.parameters(), opt, 1.0, "critic central_q")
    for p, b in zip(net.parameters(), before, strict=True):
        torch.testing.assert_close(p.detach(), b)  # neither refused step moved anything
    grad = guarded_step(net(x).sum() * 10.0, net.parameters(), opt, 1.0, "actor")
    assert grad == pytest.approx(10.0 * 3 ** 0.5)  # norm before clipping: |(10, 10, 10)|
    moved = torch.cat([(p.detach() - b).flatten() for p, b in zip(net.parameters(), before,
                                                                   strict=True)])
    assert moved.norm() == pytest.approx(0.1 * 1.0)  # lr x the clipped norm 1.0
