"""The learner on synthetic fragments: masks, episode ends, variants of the actor."""

from __future__ import annotations

import pytest
import torch
from rollouts import random_rollout

from marl.config import AlgoConfig
from marl.envs.base import EnvSpec
from marl.learner import Learner, update_metrics
from marl.rollout import Rollout

T, B, N, O, S, A = 6, 4, 2, 3, 4, 3  # noqa: E741 - the shape letters of the docs
SPEC = EnvSpec(agents=("a", "b"), obs_shape=(O,), state_dim=S, n_actions=A)


def fragment(seed: int = 0) -> Rollout:
    """T=6 steps of B=4 envs: env 0 terminates at t=2, env 1 is truncated at t=3."""
    return random_rollout(T, B, N, O, S, A, term_at=(2, 0), trunc_at=(3, 1), seed=seed)


def losses(ro: Rollout, **algo) -> dict[str, float]:
    torch.manual_seed(0)
    learner = Learner(SPEC, AlgoConfig(**algo))
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
    learner = Learner(SPEC, AlgoConfig())
    from marl.returns import td_lambda_targets

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
    {"advantage": "reinforce", "reinforce_baseline": True, "return_reset_on_reward": True},
])
def test_update_variants_run_and_change_parameters(algo):
    ro = fragment()
    if algo.get("rnn"):
        ro.h0 = torch.zeros(B, N, 16)
    torch.manual_seed(0)
    learner = Learner(SPEC, AlgoConfig(**algo))
    before = [p.detach().clone() for p in learner.parameters()]
    metrics = update_metrics(learner.update(ro), SPEC)
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    changed = [not torch.equal(b, p) for b, p in zip(before, learner.parameters(), strict=True)]
    assert any(changed)


def test_target_critic_hard_copy_every_interval():
    ro = fragment()
    torch.manual_seed(0)
    learner = Learner(SPEC, AlgoConfig(target_update_interval=3))
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
    learner = Learner(SPEC, AlgoConfig(eps_start=0.5, eps_end=0.1, eps_anneal_steps=100))
    eps = learner.policy.epsilon
    assert eps(0) == pytest.approx(0.5)
    assert eps(50) == pytest.approx(0.3)
    assert eps(100) == pytest.approx(0.1)
    assert eps(10_000) == pytest.approx(0.1)
