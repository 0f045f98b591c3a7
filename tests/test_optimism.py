"""The optimistic advantage (``algo.negative_advantage_scale``, Zhao et al., ICML 2024):
the transform by hand, where the learner applies it, that it is off bit for bit at its
neutral value, where the config refuses it, and that it escapes relative
over-generalisation on the climbing game where plain COMA does not."""

from __future__ import annotations

import pytest
import torch
from conftest import compose_config, make_trainer
from rollouts import random_rollout

import marl.learner as learner_module
from marl.advantages import ADVANTAGES, normalise, optimistic
from marl.config import AlgoConfig, ConfigError
from marl.envs.base import EnvSpec
from marl.learner import Learner

T, B, N, O, S, A = 6, 4, 2, 3, 4, 3  # noqa: E741 - the shape letters of the docs
SPEC = EnvSpec(agents=("a", "b"), obs_shape=(O,), state_dim=S, n_actions=A)


def fragment(seed: int = 0):
    return random_rollout(T, B, N, O, S, A, term_at=(2, 0), trunc_at=(3, 1), seed=seed)


def with_baseline(advantage: str) -> dict:
    return {"advantage": advantage, "reinforce_baseline": advantage == "reinforce"}


# ------------------------------------------------------------------ the transform


def test_optimistic_advantage_hand_worked():
    adv = torch.tensor([-4.0, -0.5, 0.0, 1.5, 3.0])
    # eta = 0.25: negatives quartered, the rest untouched
    assert torch.equal(optimistic(adv, 0.25), torch.tensor([-1.0, -0.125, 0.0, 1.5, 3.0]))
    # eta = 0: the paper's clipped advantage
    assert torch.equal(optimistic(adv, 0.0), torch.tensor([0.0, 0.0, 0.0, 1.5, 3.0]))
    # eta = 1: unchanged, bit for bit, also on values that do not round-trip a product
    x = torch.randn(1000, generator=torch.Generator().manual_seed(0)) * 1e3
    assert torch.equal(optimistic(x, 1.0), x)
    # any leading shape: [T, B, N]
    y = torch.randn(T, B, N)
    assert optimistic(y, 0.5).shape == (T, B, N)


@pytest.mark.parametrize("eta", [-0.1, 1.5])
def test_optimistic_rejects_eta_outside_unit_interval(eta):
    with pytest.raises(ValueError, match="eta"):
        optimistic(torch.zeros(3), eta)


# ------------------------------------------------------------------ in the learner


@pytest.mark.parametrize("algo", [
    *({"advantage": k} for k in ADVANTAGES),
    {"advantage": "reinforce", "reinforce_baseline": True},
    {"normalize_advantage": True},
    {"advantage": "central_v", "normalize_advantage": True, "rnn": True,
     "actor_hidden": [16, 16]},
], ids=lambda a: "-".join(f"{k}={v}" for k, v in a.items()))
def test_neutral_scale_is_bit_identical_to_the_path_without_the_transform(algo, monkeypatch):
    """The default config (scale 1) against the learner with the transform taken out
    (``optimistic`` replaced by the identity), same seeds: every parameter of actor,
    critics and target critics identical after three updates."""
    def run(cfg: AlgoConfig):
        ro = fragment()
        if cfg.rnn:
            ro.h0 = torch.zeros(B, N, 16)
        torch.manual_seed(0)
        learner = Learner(SPEC, cfg)
        torch.manual_seed(1)
        for _ in range(3):
            learner.update(ro)
        return [p.detach().clone() for p in learner.parameters()]

    cfg = AlgoConfig(**algo)
    assert cfg.negative_advantage_scale == 1.0  # the default is the paper's COMA
    with_option = run(cfg)
    monkeypatch.setattr(learner_module, "optimistic", lambda adv, eta: adv)
    without = run(cfg)
    assert len(with_option) == len(without)
    assert all(torch.equal(a, b) for a, b in zip(with_option, without, strict=True))


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("advantage", ["coma", "central_v", "reinforce"])
def test_actor_loss_uses_the_transformed_advantage(advantage, normalize):
    """The policy-gradient loss is -mean(mask * A' * log pi(u)) with A' the transformed
    advantage (standardised after the transform, as in the authors' code), while the
    reported advantage (credit/ metrics) stays the raw one."""
    ro = fragment()
    eta = 0.25
    torch.manual_seed(0)
    learner = Learner(SPEC, AlgoConfig(negative_advantage_scale=eta,
                                       normalize_advantage=normalize,
                                       **with_baseline(advantage)))
    s = learner.update(ro)
    assert (s.adv < 0).any() and (s.adv > 0).any()  # the transform has work to do
    expected_adv = optimistic(s.adv, eta)
    if normalize:
        expected_adv = normalise(expected_adv, s.mask.bool())
    logp = torch.log(s.pi.gather(-1, ro.actions[..., None]).squeeze(-1).clamp_min(1e-10))
    expected = -(expected_adv * logp * s.mask).sum() / s.mask.sum()
    assert s.pg_loss == pytest.approx(expected.item(), rel=1e-5, abs=1e-6)
    raw = -(s.adv * logp * s.mask).sum() / s.mask.sum()
    assert s.pg_loss != pytest.approx(raw.item(), rel=1e-3)


def test_option_changes_the_actor_not_the_critic():
    """One update with eta = 0 against eta = 1 from the same initial networks: identical
    critic (and target) parameters, different actor parameters."""
    def params(eta: float):
        torch.manual_seed(0)
        learner = Learner(SPEC, AlgoConfig(negative_advantage_scale=eta))
        torch.manual_seed(1)
        learner.update(fragment())
        return ([p.detach().clone() for p in learner.actor.parameters()],
                [p.detach().clone() for p in learner.critics.parameters()])

    actor0, critic0 = params(0.0)
    actor1, critic1 = params(1.0)
    assert all(torch.equal(a, b) for a, b in zip(critic0, critic1, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(actor0, actor1, strict=True))


# ------------------------------------------------------------------ config


@pytest.mark.parametrize("eta", [-0.01, 1.01])
def test_config_rejects_scale_outside_unit_interval(eta):
    with pytest.raises(ConfigError, match=r"algo.negative_advantage_scale.*\[0, 1\]"):
        AlgoConfig(negative_advantage_scale=eta)


def test_config_rejects_optimism_on_reinforce_without_a_baseline():
    with pytest.raises(ConfigError, match="algo.negative_advantage_scale.*reinforce_baseline"):
        AlgoConfig(advantage="reinforce", negative_advantage_scale=0.0)
    with pytest.raises(ConfigError, match="algo.negative_advantage_scale"):
        compose_config(["+experiment=coma_climbing_optimistic", "algo.advantage=reinforce"])
    # with a learned baseline, and on every other module, it composes
    AlgoConfig(advantage="reinforce", reinforce_baseline=True, negative_advantage_scale=0.0)
    AlgoConfig(advantage="reinforce", negative_advantage_scale=1.0)
    for k in ADVANTAGES:
        if k != "reinforce":
            AlgoConfig(advantage=k, negative_advantage_scale=0.0)


def test_optimistic_experiments_compose():
    for exp in ("coma_climbing_optimistic", "coma_penalty_optimistic"):
        cfg = compose_config([f"+experiment={exp}"])
        assert cfg.name == exp
        assert cfg.algo.negative_advantage_scale < 1.0


# ------------------------------------------------------------------ learning


@pytest.mark.slow
def test_optimism_escapes_relative_overgeneralisation_on_climbing(tmp_path):
    """Climbing game, 200k one-step games (~6 s per run on an idle core): with the same
    settings (entropy bonus included), plain COMA (eta = 1) settles on a safe cell, the
    optimistic one (eta = 0) on the optimum (0, 0) = 11. Seed 0; ten seeds of each:
    experiments/optimism/README.md."""
    def final_eval(eta: float) -> dict:
        return make_trainer(tmp_path / f"eta{eta}", [
            "+experiment=coma_climbing_optimistic", f"algo.negative_advantage_scale={eta}",
            "seed=0", "train.eval_every_env_steps=0", "train.log_every_env_steps=200000",
            "checkpoint.every_env_steps=0", "logger.progress=false", "logger.plots=[]",
            "logger.wandb.mode=disabled"]).run()

    plain, optimistic_run = final_eval(1.0), final_eval(0.0)
    assert plain["eval/return_mean"] <= 7.0, plain  # (2, 2) = 5 or (1, 1) = 7, not 11
    assert optimistic_run["eval/return_mean"] == 11.0, optimistic_run
    assert optimistic_run["eval/success_rate"] == 1.0  # every greedy episode optimal
