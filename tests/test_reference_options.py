"""The options that let a preset match JaxMARL's MAPPO and IPPO exactly (each off by
default): per-minibatch standardisation and dead agents in the means (``algo.ppo``),
the clipped, weighted value loss of ``critic_update=ppo`` (``algo.critic_ppo``), flax's
GRU init (``algo.gru_init``) and time-outs as terminals (``algo.timeouts``)."""

from __future__ import annotations

import math

import pytest
import torch
from rollouts import random_rollout
from test_ppo import MASKED, _masked_rollout_with_a_death

from marl.algos.coma.config import ComaConfig
from marl.algos.coma.critic_training import MinibatchCriticOptions
from marl.algos.coma.critics import CriticBatch, CriticNet, TDCritic
from marl.algos.coma.learner import Learner
from marl.algos.coma.updates.ppo import PPOOptions
from marl.config import ConfigError
from marl.core.nets import Actor
from marl.core.returns import td_lambda_targets
from marl.core.rollout import timeouts_as_terminals
from marl.envs.base import EnvSpec

SPEC = EnvSpec(agents=("a", "b"), obs_shape=(4,), state_dim=3, n_actions=5)


def _learner(spec=SPEC, seed=0, ppo=None, **kw) -> Learner:
    torch.manual_seed(seed)
    return Learner(spec, ComaConfig(actor_update="ppo", advantage="central_v",
                                    ppo=PPOOptions(**(ppo or {})), **kw))


def _actor_after(adv_of, ppo, seed=3):
    """The actor's weights after one PPO update on the advantages ``adv_of(adv)``."""
    learner = _learner(ppo={"epochs": 2, "minibatches": 2, **ppo})
    ro = random_rollout(6, 4, 2, 4, 3, 5, (4, 1), (3, 2))
    act = learner.actor_pass(ro)
    adv = torch.randn(6, 4, 2, generator=torch.Generator().manual_seed(seed))
    torch.manual_seed(5)  # the minibatch permutations
    learner.actor_update(learner.parts, ro, act, adv_of(adv), None)
    return learner.actor.state_dict()


def test_minibatch_standardisation_makes_the_update_blind_to_the_advantages_scale():
    for on in (True, False):
        a = _actor_after(lambda x: x, {"minibatch_normalize": on})
        b = _actor_after(lambda x: 10 * x + 3, {"minibatch_normalize": on})
        same = all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
        assert same == on, on


def test_dead_agents_in_the_means_scale_the_loss_by_the_living_share():
    """One epoch of one minibatch: ratio 1, so the loss is minus the mean advantage; with
    dead agents counted the same sum is divided by every agent-step."""
    ro = _masked_rollout_with_a_death()
    losses = {}
    for dead in (False, True):
        learner = _learner(MASKED, ppo={"epochs": 1, "minibatches": 1,
                                        "dead_in_means": dead})
        act = learner.actor_pass(ro)
        adv = torch.randn(6, 4, 2, generator=torch.Generator().manual_seed(1))
        losses[dead] = learner.actor_update(learner.parts, ro, act, adv, None).pg_loss
        alive = ro.alive[:-1].float()
        assert math.isclose(losses[dead], -float((adv * alive).sum() / (
            alive.numel() if dead else alive.sum())), rel_tol=1e-5)
    assert losses[True] == pytest.approx(losses[False] * 45 / 48, rel=1e-5)  # 3 dead steps


def _critic(seed=0) -> tuple[TDCritic, CriticBatch]:
    torch.manual_seed(seed)
    critic = TDCritic(CriticNet("central_v", SPEC, [8]), lr=0.1, optimizer="adam", alpha=0.99,
                      opt_eps=1e-5, grad_clip=1e9, target_update_interval=1, tau=None)
    g = torch.Generator().manual_seed(seed)
    b = CriticBatch(torch.randn(5, 3, generator=g), torch.randn(5, 2, 4, generator=g),
                    torch.zeros(5, 2, dtype=torch.long), torch.zeros(5, 2, dtype=torch.long))
    return critic, b


def test_clipped_weighted_value_loss_matches_a_slow_reference():
    critic, b = _critic()
    with torch.no_grad():
        v = critic.values(b)
    g = torch.Generator().manual_seed(9)
    ret, old = torch.randn(5, 2, generator=g), v + 0.5 * torch.randn(5, 2, generator=g)
    mask = torch.ones(5, 2)
    mask[0, 1] = 0
    step = critic.update(b, ret, mask, coef=0.25, old=old, clip=0.2)
    slow, n = 0.0, 0
    for i in range(5):
        for a in range(2):
            if mask[i, a]:
                vv, vo, g_ = float(v[i, a]), float(old[i, a]), float(ret[i, a])
                clipped = vo + min(max(vv - vo, -0.2), 0.2)
                slow += max((vv - g_) ** 2, (clipped - g_) ** 2)
                n += 1
    assert step.loss == pytest.approx(0.25 * slow / n, rel=1e-5)


def test_critic_update_ppo_uses_its_value_options():
    """The row's options reach its critic step: another coefficient, another critic."""
    ro = random_rollout(5, 4, 2, 4, 3, 5, (2, 1), (3, 2))
    nets = []
    for opts in ({}, {"value_coef": 0.25}, {"value_clip": 0.01}):
        learner = _learner(critic_update="ppo", seed=1,
                           critic_ppo=MinibatchCriticOptions(**opts),
                           ppo={"epochs": 2, "minibatches": 2})
        torch.manual_seed(2)
        learner.update(ro)
        nets.append(learner.critics["central_v"].net.state_dict())
    for other in nets[1:]:
        assert any(not torch.allclose(nets[0][k], other[k]) for k in nets[0])


@pytest.mark.parametrize("bad,match", [
    ({"critic_ppo": MinibatchCriticOptions(value_coef=1.0)} | {"gru_init": "keras"},
     "algo.gru_init"),
    ({"timeouts": "drop"}, "algo.timeouts"),
])
def test_bad_choices_name_the_key(bad, match):
    with pytest.raises(ConfigError, match=match):
        ComaConfig(actor_update="ppo", advantage="central_v", **bad)


def test_bad_value_options_name_the_key():
    with pytest.raises(ConfigError, match="algo.critic_ppo.value_clip"):
        MinibatchCriticOptions(value_clip=0.0)


def test_flax_gru_init():
    torch.manual_seed(0)
    gru = Actor((40,), 2, 5, [128], rnn=True, gru_init="flax").nets[0].gru.requires_grad_(False)
    std = (1 / 128) ** 0.5
    for w in gru.weight_hh.split(128):  # each gate's recurrent kernel orthogonal
        torch.testing.assert_close(w @ w.T, torch.eye(128), atol=1e-4, rtol=0)
    for w in gru.weight_ih.split(128):  # lecun normal: s.d. 1/sqrt(fan_in), cut at 2.27
        assert abs(float(w.std()) - std) < 0.05 * std
        assert float(w.abs().max()) <= 2 * std / 0.87962566103423978 + 1e-6
    assert not gru.bias_ih.any() and not gru.bias_hh.any()
    torch.manual_seed(0)
    default = Actor((40,), 2, 5, [128], rnn=True).nets[0].gru
    assert default.bias_hh.abs().max() > 0  # torch's uniform init, unchanged by default


def test_a_time_out_as_a_terminal_bootstraps_nothing():
    ro = random_rollout(5, 3, 2, 4, 3, 5, (1, 0), (2, 1))
    nxt = torch.full((5, 3, 2), 7.0)
    t = timeouts_as_terminals(ro)
    assert bool(t.terminated[2, 1]) and not t.truncated.any()
    kept = td_lambda_targets(ro.rewards, nxt, ro.terminated, ro.truncated, 0.9, 0.0)
    cut = td_lambda_targets(t.rewards, nxt, t.terminated, t.truncated, 0.9, 0.0)
    torch.testing.assert_close(kept[2, 1], ro.rewards[2, 1] + 0.9 * 7.0)
    torch.testing.assert_close(cut[2, 1], ro.rewards[2, 1])
    torch.testing.assert_close(cut[3:], kept[3:])


def test_the_learner_reads_its_time_out_and_init_choices():
    ro = random_rollout(5, 3, 2, 4, 3, 5, (1, 0), (2, 1))
    targets = {mode: _learner(timeouts=mode, ppo={"minibatches": 1}).update(ro).td_target
               for mode in ("bootstrap", "terminal")}
    torch.testing.assert_close(targets["terminal"][2, 1], ro.rewards[2, 1])
    assert not torch.allclose(targets["bootstrap"][2, 1], ro.rewards[2, 1])
    assert not _learner(rnn=True, gru_init="flax").actor.nets[0].gru.bias_hh.any()
