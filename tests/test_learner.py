"""The learner on synthetic fragments: masks, episode ends, variants of the actor."""

from __future__ import annotations

import pytest
import torch
from rollouts import random_rollout

import marl.algos.coma.critic_training as critic_training
from marl.algos.coma.advantages import ReinforceOptions
from marl.algos.coma.config import ComaConfig
from marl.algos.coma.learner import Learner, update_metrics
from marl.core.rollout import Rollout
from marl.envs.base import EnvSpec

T, B, N, O, S, A = 6, 4, 2, 3, 4, 3  # noqa: E741 - the shape letters of the docs
SPEC = EnvSpec(agents=("a", "b"), obs_shape=(O,), state_dim=S, n_actions=A)


def fragment(seed: int = 0) -> Rollout:
    """T=6 steps of B=4 envs: env 0 terminates at t=2, env 1 is truncated at t=3."""
    return random_rollout(T, B, N, O, S, A, term_at=(2, 0), trunc_at=(3, 1), seed=seed)


def losses(ro: Rollout, **algo) -> dict[str, float]:
    torch.manual_seed(0)
    learner = Learner(SPEC, ComaConfig(**algo))
    torch.manual_seed(1)
    return update_metrics(learner.update(ro), SPEC)


def test_dead_agent_padding_never_changes_a_loss():
    """Agent b dies after step 2 of env 2: whatever is recorded for it afterwards (obs,
    rewards, sampled actions, which the runner records as 0) must not move any loss."""
    ro = fragment()
    ro.alive[3:, 2, 1] = False
    ro.actions[3:, 2, 1] = 0
    ro.prev_actions[4:, 2, 1] = 0
    base = losses(ro)
    garbage = fragment()
    garbage.alive.copy_(ro.alive)
    garbage.actions.copy_(ro.actions)
    garbage.prev_actions.copy_(ro.prev_actions)
    g = torch.Generator().manual_seed(5)
    garbage.obs[3:, 2, 1] = torch.randn(T - 2, O, generator=g) * 1e4
    garbage.rewards[3:, 2, 1] = 1e6
    got = losses(garbage)
    for k in ("loss/critic", "loss/actor", "loss/entropy", "credit/a/advantage_mean",
              "credit/b/advantage_mean"):
        assert got[k] == pytest.approx(base[k], rel=1e-5, abs=1e-7), k


def test_reward_after_termination_does_not_leak_into_the_ended_episode():
    """Env 0 terminates at step 2: rewards of its next episode must not change the
    critic targets of steps 0..2 (they do change later targets)."""
    ro = fragment()
    torch.manual_seed(0)
    learner = Learner(SPEC, ComaConfig())
    from marl.core.returns import td_lambda_targets

    def targets(rew):
        return td_lambda_targets(rew, torch.zeros(T, B, N), ro.terminated, ro.truncated,
                                 0.99, 0.8)

    r2 = ro.rewards.clone()
    r2[3:, 0] += 10.0
    assert torch.equal(targets(ro.rewards)[:3, 0], targets(r2)[:3, 0])
    assert not torch.equal(targets(ro.rewards)[3:, 0], targets(r2)[3:, 0])
    del learner


@pytest.mark.parametrize("algo", [
    {"rnn": True, "actor_hidden": [16, 16]},
    {"share_actor": False},
    {"optimizer": "rmsprop"},
    {"target_tau": 0.05},
    {"normalize_advantage": True, "entropy_coef": 0.01, "critic_updates": 2},
    {"critic_own_obs": False},
    {"advantage": "central_qv"},
    {"advantage": "central_v"},
    {"advantage": "iac_v"},
    {"advantage": "iac_q"},
    {"advantage": "reinforce"},
    {"advantage": "reinforce", "reinforce": ReinforceOptions(baseline=True, reset_on_reward=True)},
])
def test_update_variants_run_and_change_parameters(algo):
    ro = fragment()
    if algo.get("rnn"):
        ro.h0 = torch.zeros(B, N, 16)
    torch.manual_seed(0)
    learner = Learner(SPEC, ComaConfig(**algo))
    before = [p.detach().clone() for p in learner.parameters()]
    metrics = update_metrics(learner.update(ro), SPEC)
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    changed = [not torch.equal(b, p) for b, p in zip(before, learner.parameters(), strict=True)]
    assert any(changed)


def test_target_critic_hard_copy_every_interval():
    ro = fragment()
    torch.manual_seed(0)
    learner = Learner(SPEC, ComaConfig(target_update_interval=3))
    target0 = [p.clone() for p in learner.critics["central_q"].target.parameters()]
    for i in range(1, 4):
        learner.update(ro)
        same = all(torch.equal(a, b) for a, b in
                   zip(target0, learner.critics["central_q"].target.parameters(), strict=True))
        assert same == (i < 3)
    critic = learner.critics["central_q"]
    for a, b in zip(critic.net.parameters(), critic.target.parameters(), strict=True):
        assert torch.equal(a, b)


def test_epsilon_schedule_is_linear_then_flat():
    learner = Learner(SPEC, ComaConfig(eps_start=0.5, eps_end=0.1, eps_anneal_steps=100))
    eps = learner.policy.epsilon
    assert eps(0) == pytest.approx(0.5)
    assert eps(50) == pytest.approx(0.3)
    assert eps(100) == pytest.approx(0.1)
    assert eps(10_000) == pytest.approx(0.1)


# ------------------------------------------------------- bootstrapping and the acting policy
def _spy_update(learner: Learner, ro: Rollout, seed: int = 1) -> dict:
    """Run ``learner.update(ro)``; return what it computed: the advantage inputs (``x``),
    the critics' next-state batch (``nxt``) and the actor's gradients before its step."""
    seen: dict = {}
    adv_fn, step = learner.compute_advantage, learner.actor_opt.step
    batches = critic_training.critic_batches

    def spy_adv(x):
        seen["x"] = x
        return adv_fn(x)

    def spy_batches(*args):
        now, nxt = batches(*args)
        seen["nxt"] = nxt
        return now, nxt

    def spy_step(*args, **kwargs):
        seen["grads"] = [p.grad.clone() for p in learner.actor.parameters()]
        return step(*args, **kwargs)

    learner.compute_advantage, critic_training.critic_batches = spy_adv, spy_batches
    learner.actor_opt.step = spy_step
    torch.manual_seed(seed)
    try:
        seen["stats"] = learner.update(ro)
    finally:
        critic_training.critic_batches = batches
    return seen


def _deterministic_actor(learner: Learner, action: int) -> None:
    """Every agent's softmax puts (numerically) all its mass on ``action``."""
    last = [m for m in learner.actor.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(-50.0)
        last.bias[action] = 50.0


def test_truncated_step_bootstraps_from_the_final_state_not_the_reset_one():
    """Env 1 is truncated at t=3: its next state there is ``final_state`` / ``final_obs``,
    never ``state[4]`` / ``obs[4]`` (the next episode's first observation)."""
    import copy

    ro = fragment()
    torch.manual_seed(0)
    learner = Learner(SPEC, ComaConfig())
    base = _spy_update(copy.deepcopy(learner), ro)["x"].next_values["central_q"]
    reset = fragment()
    reset.state[4, 1] += 100.0
    reset.obs[4, 1] += 100.0
    got = _spy_update(copy.deepcopy(learner), reset)["x"].next_values["central_q"]
    torch.testing.assert_close(got[3, 1], base[3, 1])
    final = fragment()
    final.final_state[3, 1] += 100.0
    final.final_obs[3, 1] += 100.0
    got = _spy_update(copy.deepcopy(learner), final)["x"].next_values["central_q"]
    assert not torch.allclose(got[3, 1], base[3, 1])


def test_fragment_end_bootstraps_with_the_policys_action_and_zero_for_the_dead():
    """Where the fragment (or an episode, by truncation) stops, the next joint action is
    sampled from the policy there, not 0; an agent that dies on the fragment's last step
    is recorded as acting 0 there, as the runner records dead agents."""
    ro = fragment()
    ro.eps.zero_()
    ro.alive[T, 2, 1] = False  # agent b of env 2 dies on the last step
    torch.manual_seed(0)
    learner = Learner(SPEC, ComaConfig())
    _deterministic_actor(learner, 2)
    nxt = _spy_update(learner, ro)["nxt"]
    end = nxt.actions[T - 1]  # [B, N]
    assert end[2, 1] == 0
    assert (end[[0, 1, 3]] == 2).all() and end[2, 0] == 2
    assert (nxt.actions[3, 1] == 2).all()  # env 1 truncated at t=3
    torch.testing.assert_close(nxt.actions[:T - 1, 0], ro.actions[1:, 0])  # inside: taken


def test_learner_uses_the_epsilon_that_acted():
    """log pi is taken under ``ro.eps`` (what the runner recorded), whatever the schedule
    or the policy's current ``eps`` say."""
    ro = fragment()
    ro.eps.fill_(0.37)
    torch.manual_seed(0)
    learner = Learner(SPEC, ComaConfig(eps_start=0.5, eps_end=0.01, eps_anneal_steps=100))
    learner.policy.eps = 0.9
    with torch.no_grad():
        logits, _ = learner.actor.unroll(ro.obs[:-1], ro.prev_actions[:-1], ro.first[:-1],
                                         ro.h0)
    seen = _spy_update(learner, ro)
    from marl.core.policy import exploration_probs

    torch.testing.assert_close(seen["x"].pi.detach(), exploration_probs(logits, 0.37))
    assert update_metrics(seen["stats"], SPEC)["train/epsilon"] == pytest.approx(0.37)


@pytest.mark.parametrize("advantage", ["coma", "central_qv", "central_v", "iac_q"])
def test_no_gradient_flows_through_the_advantage_or_its_baseline(advantage):
    """The actor's gradient is exactly that of ``-mean(mask * A * log pi(u))`` with A a
    constant: the counterfactual baseline ``sum_u pi(u) Q(u)`` depends on the actor, and
    a gradient through it (a missing no_grad / detach) changes this gradient."""
    import copy

    ro = fragment()
    torch.manual_seed(0)
    learner = Learner(SPEC, ComaConfig(advantage=advantage, grad_clip=1e9))
    before = copy.deepcopy(learner)
    seen = _spy_update(learner, ro)
    adv = seen["x"]  # the inputs; recompute the advantage as a constant
    with torch.no_grad():
        a_const, _ = before.advantage.fn(adv)
    logits, _ = before.actor.unroll(ro.obs[:-1], ro.prev_actions[:-1], ro.first[:-1], ro.h0)
    from marl.core.policy import exploration_probs

    pi = exploration_probs(logits, ro.eps[:, None, None, None])
    logp = torch.log(pi.gather(-1, ro.actions[..., None]).squeeze(-1))
    mask = ro.alive[:-1].float()
    loss = -(a_const * logp * mask).sum() / mask.sum()
    ref = torch.autograd.grad(loss, list(before.actor.parameters()))
    for got, want in zip(seen["grads"], ref, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


# ------------------------------------------------ dead agents: the team's return after death
@pytest.mark.parametrize("advantage,kind", [("coma", "central_q"), ("central_v", "central_v"),
                                            ("iac_v", "local_v")])
def test_dead_agents_last_action_is_credited_with_the_teams_return(advantage, kind):
    """Agent b of env 2 dies after acting at t=2 (the episode goes on): its target there
    continues with the team's, agent a's next value and target after t=2, instead of
    stopping at its immediate reward as if the episode had terminated for it."""
    ro = fragment()
    ro.alive[3:, 2, 1] = False
    ro.actions[3:, 2, 1] = 0
    ro.prev_actions[4:, 2, 1] = 0
    torch.manual_seed(0)
    cfg = ComaConfig(advantage=advantage)
    x = _spy_update(Learner(SPEC, cfg), ro)["x"]
    nv, tg = x.next_values[kind], x.targets[kind]
    g, lam = cfg.gamma, cfg.td_lambda
    want = ro.rewards[2, 2, 1] + g * (nv[2, 2, 0] + lam * (tg[3, 2, 0] - nv[2, 2, 0]))
    assert tg[2, 2, 1].item() == pytest.approx(want.item(), rel=1e-5)
    assert tg[2, 2, 1].item() != pytest.approx(ro.rewards[2, 2, 1].item())
    # the survivor's own target is untouched by b's death
    assert tg[2, 2, 0].item() == pytest.approx(
        (ro.rewards[2, 2, 0] + g * (nv[2, 2, 0] + lam * (tg[3, 2, 0] - nv[2, 2, 0]))).item(),
        rel=1e-5)


def test_agent_that_terminated_in_a_truncated_step_is_not_bootstrapped_as_alive():
    """Env 1 is truncated at t=3 and agent b terminated in that same step
    (``final_alive`` False): b's next joint-action slot is "0" (gone) in every critic
    input, and b's target bootstraps from the team's value of the final state (agent
    a's), not from b's own Q there as if b were still fighting."""
    ro = fragment()
    ro.final_alive[3, 1, 1] = False
    torch.manual_seed(0)
    learner = Learner(SPEC, ComaConfig())
    _deterministic_actor(learner, 2)
    seen = _spy_update(learner, ro)
    nxt, x = seen["nxt"], seen["x"]
    assert nxt.actions[3, 1].tolist() == [2, 0]
    nv, tg = x.next_values["central_q"], x.targets["central_q"]
    gamma = learner.cfg.gamma
    assert tg[3, 1, 1].item() == pytest.approx((ro.rewards[3, 1, 1] + gamma * nv[3, 1, 0]).item(),
                                               rel=1e-5)
    assert tg[3, 1, 0].item() == pytest.approx((ro.rewards[3, 1, 0] + gamma * nv[3, 1, 0]).item(),
                                               rel=1e-5)


@pytest.mark.parametrize("mode", ["sum", "mean", "off"])
def test_team_reward_is_what_every_agent_is_trained_on(mode):
    """``algo.team_reward``: the advantage inputs and critic targets see the team's
    reward (sum or mean over the agents that acted); ``off`` keeps the env's."""
    ro = fragment()
    ro.alive[3:, 2, 1] = False  # b of env 2 is dead from t=3: its rewards are padding
    ro.rewards[3:, 2, 1] = 1e6
    torch.manual_seed(0)
    x = _spy_update(Learner(SPEC, ComaConfig(team_reward=mode)), ro)["x"]
    acted = ro.alive[:-1].float()
    total = (ro.rewards * acted).sum(-1, keepdim=True)
    want = {"sum": total, "mean": total / acted.sum(-1, keepdim=True), "off": ro.rewards}[mode]
    torch.testing.assert_close(x.rewards, want.expand_as(ro.rewards))
    if mode != "off":
        assert x.rewards.abs().max() < 1e3  # the dead agent's padding never counts


def test_team_reward_bad_value_names_it():
    from marl.config import ConfigError

    with pytest.raises(ConfigError, match=r"algo.team_reward = 'total' is invalid.*'sum'"):
        ComaConfig(team_reward="total")
