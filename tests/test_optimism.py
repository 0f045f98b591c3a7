"""The two remedies for relative over-generalisation: the optimistic advantage
(``algo.negative_advantage_scale``, Zhao et al., ICML 2024) and the others' best reply
(``algo.optimistic_others``, Pareto-AC, Christianos et al., TMLR 2023). For each: the
maths by hand, where the learner applies it, that it is off bit for bit at its neutral
value, where the config refuses it, and what it learns on the matrix games."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from conftest import compose_config, make_trainer
from rollouts import random_rollout
from torch import Tensor

import marl.algos.coma.learner as learner_module
from marl.algos.coma.advantages import (
    ADVANTAGES,
    ReinforceOptions,
    best_others_q,
    counterfactual_advantage,
    joint_actions,
    normalise,
    optimistic,
    optimistic_others,
)
from marl.algos.coma.config import ComaConfig
from marl.algos.coma.critics import CriticBatch
from marl.algos.coma.learner import Learner
from marl.config import ConfigError
from marl.envs.base import EnvSpec

T, B, N, O, S, A = 6, 4, 2, 3, 4, 3  # noqa: E741 - the shape letters of the docs
SPEC = EnvSpec(agents=("a", "b"), obs_shape=(O,), state_dim=S, n_actions=A)


def fragment(seed: int = 0):
    return random_rollout(T, B, N, O, S, A, term_at=(2, 0), trunc_at=(3, 1), seed=seed)


def with_baseline(advantage: str) -> dict:
    return {"advantage": advantage,
            "reinforce": ReinforceOptions(baseline=advantage == "reinforce")}


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
    {"advantage": "reinforce", "reinforce": ReinforceOptions(baseline=True)},
    {"normalize_advantage": True},
    {"advantage": "central_v", "normalize_advantage": True, "rnn": True,
     "actor_hidden": [16, 16]},
], ids=lambda a: "-".join(f"{k}={v}" for k, v in a.items()))
def test_neutral_scale_is_bit_identical_to_the_path_without_the_transform(algo, monkeypatch):
    """The default config (scale 1) against the learner with the transform taken out
    (``optimistic`` replaced by the identity), same seeds: every parameter of actor,
    critics and target critics identical after three updates."""
    def run(cfg: ComaConfig):
        ro = fragment()
        if cfg.rnn:
            ro.h0 = torch.zeros(B, N, 16)
        torch.manual_seed(0)
        learner = Learner(SPEC, cfg)
        torch.manual_seed(1)
        for _ in range(3):
            learner.update(ro)
        return [p.detach().clone() for p in learner.parameters()]

    cfg = ComaConfig(**algo)
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
    learner = Learner(SPEC, ComaConfig(negative_advantage_scale=eta,
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


@pytest.mark.parametrize(("field", "off", "on"), [("negative_advantage_scale", 1.0, 0.0),
                                                   ("optimistic_others", 0.0, 0.9)])
def test_option_changes_the_actor_not_the_critic(field, off, on):
    """One update with the option off and on from the same initial networks: identical
    critic (and target) parameters, different actor parameters."""
    def params(value: float):
        torch.manual_seed(0)
        learner = Learner(SPEC, ComaConfig(**{field: value}))
        torch.manual_seed(1)
        learner.update(fragment())
        return ([p.detach().clone() for p in learner.actor.parameters()],
                [p.detach().clone() for p in learner.critics.parameters()])

    actor0, critic0 = params(off)
    actor1, critic1 = params(on)
    assert all(torch.equal(a, b) for a, b in zip(critic0, critic1, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(actor0, actor1, strict=True))


# ------------------------------------------------------------------ config


@pytest.mark.parametrize("eta", [-0.01, 1.01])
def test_config_rejects_scale_outside_unit_interval(eta):
    with pytest.raises(ConfigError, match=r"algo.negative_advantage_scale.*\[0, 1\]"):
        ComaConfig(negative_advantage_scale=eta)


def test_config_rejects_optimism_on_reinforce_without_a_baseline():
    with pytest.raises(ConfigError, match="algo.negative_advantage_scale.*reinforce.baseline"):
        ComaConfig(advantage="reinforce", negative_advantage_scale=0.0)
    with pytest.raises(ConfigError, match="algo.negative_advantage_scale"):
        compose_config(["+experiment=coma_climbing_optimistic", "algo.advantage=reinforce"])
    # with a learned baseline, and on every other module, it composes
    ComaConfig(advantage="reinforce", reinforce=ReinforceOptions(baseline=True),
               negative_advantage_scale=0.0)
    ComaConfig(advantage="reinforce", negative_advantage_scale=1.0)
    for k in ADVANTAGES:
        if k != "reinforce":
            ComaConfig(advantage=k, negative_advantage_scale=0.0)


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


# ------------------------------------------------------ the others' best reply (Pareto-AC)

PENALTY = torch.tensor([[-100.0, 0.0, 10.0], [0.0, 2.0, 0.0], [10.0, 0.0, -100.0]])


def table_critic(payoff: Tensor):
    """A perfect COMA critic of an N-agent one-step game ``payoff[u_0, ..., u_N-1]``:
    joint action ``[..., N]`` -> ``[..., N, A]``, row a = payoff with a's action varied."""
    n, a = payoff.dim(), payoff.shape[0]

    def q_of(u: Tensor) -> Tensor:
        rows = []
        for i in range(n):
            idx = [u[..., j, None].expand(*u.shape[:-1], a) if j != i else
                   torch.arange(a).expand(*u.shape[:-1], a) for j in range(n)]
            rows.append(payoff[tuple(idx)])
        return torch.stack(rows, -2)

    return q_of


def test_best_others_q_hand_worked_on_the_penalty_game():
    """Agent 0's row: max over the partner's column of each of its actions; agent 1's
    row: max over agent 0's rows. Whatever joint action was taken."""
    best = best_others_q(table_critic(PENALTY), joint_actions(2, 3), (4,))
    assert best.shape == (4, 2, 3)
    assert torch.equal(best, torch.tensor([[10.0, 2.0, 10.0]] * 2).expand(4, 2, 3))


def test_best_others_q_maximises_over_every_joint_action_of_the_others():
    """Three agents, a random table: the max over the other two agents' 9 joint actions,
    against a loop over them."""
    payoff = torch.randn(3, 3, 3, generator=torch.Generator().manual_seed(0))
    best = best_others_q(table_critic(payoff), joint_actions(3, 3), ())
    for a, own in itertools.product(range(3), range(3)):
        ref = max(payoff[tuple(own if i == a else o.pop(0) for i in range(3))]
                  for o in (list(c) for c in itertools.product(range(3), repeat=2)))
        assert best[a, own] == ref


def test_optimistic_others_hand_worked_advantage_on_the_penalty_game():
    """Penalty game, agent 0 played the safe 1 against the partner's 0, both uniform.
    COMA: Q(., 0) = [-100, 0, 10], baseline -30, A(1) = +30: the safe action wins.
    Best reply: Q* = [10, 2, 10], baseline 22/3, A(1) = 2 - 22/3 = -16/3.
    w = 0.5: Q = [-45, 1, 10], baseline -34/3, A(1) = 1 + 34/3 = 37/3."""
    q = PENALTY[:, 0]
    q_best = torch.tensor([10.0, 2.0, 10.0])
    pi = torch.full((3,), 1 / 3)
    safe = torch.tensor(1)
    want = {0.0: 30.0, 1.0: -16 / 3, 0.5: 37 / 3}
    for w, a in want.items():
        adv, _ = counterfactual_advantage(optimistic_others(q, q_best, w), pi, safe)
        assert adv.item() == pytest.approx(a, rel=1e-6), w
    assert torch.equal(optimistic_others(q, q_best, 0.0), q)  # off: bit for bit
    assert torch.equal(optimistic_others(q, q_best, 1.0), q_best)
    assert torch.equal(optimistic_others(q, q_best, 0.5), torch.tensor([-45.0, 1.0, 10.0]))


@pytest.mark.parametrize("w", [-0.1, 1.5])
def test_optimistic_others_rejects_w_outside_unit_interval(w):
    with pytest.raises(ValueError, match="w = "):
        optimistic_others(torch.zeros(3), torch.zeros(3), w)


@pytest.mark.parametrize("n, a", [(2, 5), (3, 3), (4, 2)])
def test_joint_actions_hold_every_joint_action_of_the_others_once(n, a):
    """A^(N-1) joint actions, and every agent's others play each of their A^(N-1) joint
    actions in exactly one of them (one agent alone: a single pass, no others)."""
    assert torch.equal(joint_actions(1, 4), torch.zeros(1, 1, dtype=torch.long))
    joint = joint_actions(n, a)
    assert joint.shape == (a ** (n - 1), n)
    for agent in range(n):
        others = torch.cat([joint[:, :agent], joint[:, agent + 1:]], -1)  # [J, N-1]
        assert others.unique(dim=0).shape[0] == a ** (n - 1)


def test_joint_actions_refuses_spaces_too_big_to_enumerate():
    with pytest.raises(ValueError, match=r"9\^4 = 6561"):
        joint_actions(5, 9)
    with pytest.raises(ValueError, match="6561"):
        Learner(EnvSpec(agents=tuple("abcde"), obs_shape=(O,), state_dim=S, n_actions=9),
                ComaConfig(optimistic_others=0.5))


@pytest.mark.parametrize("advantage", ["coma", "central_qv"])
def test_learner_advantage_reads_the_mixed_q_of_the_critic_before_its_step(advantage):
    """Two updates (the second after the critic and its target have moved apart): the
    advantage equals the module's on (1 - w) Q(taken u^-a) + w max_{u^-a} Q, both from
    the critic as it was before that fragment's step, found here by a loop over the
    partner's actions on a copy of it."""
    w = 0.75
    torch.manual_seed(0)
    learner = Learner(SPEC, ComaConfig(advantage=advantage, optimistic_others=w,
                                       target_update_interval=100))
    for seed in range(2):
        ro = fragment(seed)
        net = copy.deepcopy(learner.critics["central_q"].net)
        now = CriticBatch(ro.state[:-1], ro.obs[:-1], ro.actions, ro.prev_actions[:-1])
        with torch.no_grad():
            q = net(now)  # [T, B, N, A]
            per_partner = []
            for u in range(A):  # the partner of each agent plays u
                other = torch.full_like(ro.actions, u)
                per_partner.append(net(CriticBatch(now.state, now.obs, other,
                                                   now.prev_actions)))
            q_best = torch.stack(per_partner).max(0).values
        s = learner.update(ro)
        q_mix = (1 - w) * q + w * q_best
        if advantage == "coma":
            want, _ = counterfactual_advantage(q_mix, s.pi, ro.actions)
        else:
            v = s.baseline
            want = q_mix.gather(-1, ro.actions[..., None]).squeeze(-1) - v
        assert torch.allclose(s.adv, want, atol=1e-5), seed


def test_off_never_enumerates_and_is_the_default(monkeypatch):
    """optimistic_others = 0 (the default) never calls the enumeration or the mix, so the
    path is the paper's COMA bit for bit (the parameters of the bit-identity test above
    are computed with it off)."""
    assert ComaConfig().optimistic_others == 0.0

    def boom(*args, **kwargs):
        raise AssertionError("called with algo.optimistic_others = 0")

    monkeypatch.setattr(learner_module.advantages, "best_others_q", boom)
    monkeypatch.setattr(learner_module.advantages, "optimistic_others", boom)
    learner = Learner(SPEC, ComaConfig())
    assert learner.joint is None
    learner.update(fragment())


@pytest.mark.parametrize("w", [-0.01, 1.01])
def test_config_rejects_optimistic_others_outside_unit_interval(w):
    with pytest.raises(ConfigError, match=r"algo.optimistic_others.*\[0, 1\]"):
        ComaConfig(optimistic_others=w)


def test_config_refuses_optimistic_others_without_a_central_q_critic():
    for k in ADVANTAGES:
        if "central_q" in ADVANTAGES[k].critics:  # coma, central_qv and the coma_* fixes
            ComaConfig(advantage=k, optimistic_others=0.9)
            continue
        with pytest.raises(ConfigError, match="algo.optimistic_others.*centralised Q"):
            ComaConfig(advantage=k, optimistic_others=0.9,
                       reinforce=ReinforceOptions(baseline=k == "reinforce"))
        ComaConfig(advantage=k, optimistic_others=0.0,
                   reinforce=ReinforceOptions(baseline=k == "reinforce"))
    with pytest.raises(ConfigError, match="algo.optimistic_others"):
        compose_config(["+experiment=coma_penalty_pareto", "algo.advantage=central_v"])


def test_pareto_experiments_compose():
    for exp in ("coma_climbing_pareto", "coma_penalty_pareto", "coma_boxpush_pareto"):
        cfg = compose_config([f"+experiment={exp}"])
        assert cfg.name == exp
        assert cfg.algo.optimistic_others == 0.9
        assert cfg.algo.negative_advantage_scale == 1.0


@pytest.mark.slow
def test_best_reply_escapes_relative_overgeneralisation_on_both_games(tmp_path):
    """Climbing and penalty (k = 100), 200k one-step games each (~10 s of CPU per run, 113 s
    for the three at load 8), seed 0, the shipped experiments (w = 0.9): the optima 11 and
    10, where plain COMA settles on a safe cell and eta = 0 on penalty's safe (1, 1) in 9
    of 10 seeds.
    Pure Pareto-AC (w = 1) on penalty puts both agents on the same optimum's action,
    (0, 0) or (2, 2) = -100: the tie that w < 1 breaks. Ten seeds of each:
    experiments/optimism/README.md."""
    def final_eval(exp: str, *overrides: str) -> dict:
        return make_trainer(tmp_path / f"{exp}{len(overrides)}", [
            f"+experiment={exp}", "seed=0", "train.eval_every_env_steps=0",
            "train.log_every_env_steps=200000", "checkpoint.every_env_steps=0",
            "logger.progress=false", "logger.plots=[]", "logger.wandb.mode=disabled",
            *overrides]).run()

    climbing = final_eval("coma_climbing_pareto")
    assert climbing["eval/return_mean"] == 11.0, climbing
    penalty = final_eval("coma_penalty_pareto")
    assert penalty["eval/return_mean"] == 10.0, penalty
    pure = final_eval("coma_penalty_pareto", "algo.optimistic_others=1.0")
    assert pure["eval/return_mean"] == -100.0, pure
