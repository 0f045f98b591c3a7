"""COMA's fixes as advantage modules: the optimal baseline (Kuba et al. 2021) against a
brute-force variance minimisation and a hand-worked case; the TD(lambda) return minus
the counterfactual baseline against element-by-element loops through a full update."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import compose_config, load_script
from test_ablations import SPEC, A, B, N, T, algo_cfg, ref_lambda_return, tiny_fragment

from marl.algos.coma.advantages import (
    ADVANTAGES,
    AdvantageInputs,
    counterfactual_advantage,
    optimal_baseline,
)
from marl.algos.coma.config import ComaConfig
from marl.algos.coma.learner import Learner
from marl.config import ConfigError

FIXES = ("coma_return", "coma_ob", "coma_ob_return")


def test_optimal_baseline_hand_worked():
    # pi = (1/2, 1/4, 1/4): ||pi||^2 = 3/8, M = 11/8 - 2 pi = (3/8, 7/8, 7/8),
    # weights pi M = (3/16, 7/32, 7/32), sum 5/8 = 1 - ||pi||^2;
    # b* = (3/16 * 1 + 7/32 * 2 + 7/32 * 4) / (5/8) = (3/2) / (5/8) = 12/5.
    q = torch.tensor([1.0, 2.0, 4.0])
    pi = torch.tensor([0.5, 0.25, 0.25])
    assert optimal_baseline(q, pi).item() == pytest.approx(2.4)
    # COMA's baseline on the same numbers is 2: the optimal one leans towards the
    # rarely taken actions, whose score-function gradients are the largest.
    assert counterfactual_advantage(q[None], pi[None], torch.tensor([0]))[1].item() == 2.0


def _grad_variance(logits: torch.Tensor, q: torch.Tensor, b: float) -> float:
    """E_u ||grad_x log pi(u) (Q(u) - b)||^2 under pi = softmax(x), by autograd, one
    action at a time (the estimator's second moment; its mean does not depend on b)."""
    pi = torch.softmax(logits, -1).detach()
    total = 0.0
    for u in range(len(q)):
        x = logits.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(torch.log_softmax(x, -1)[u], x)
        total += float(pi[u]) * float(((g * (float(q[u]) - b)) ** 2).sum())
    return total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_optimal_baseline_minimises_the_gradient_variance(seed):
    """Brute force: scan b on a fine grid for the smallest variance of the policy
    gradient with respect to the logits; the argmin is b*."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(5, generator=g) * 1.5
    q = torch.randn(5, generator=g) * 2.0
    pi = torch.softmax(logits, -1)
    grid = torch.linspace(float(q.min()), float(q.max()), 2001)
    best = min(grid.tolist(), key=lambda b: _grad_variance(logits, q, b))
    step = float(grid[1] - grid[0])
    assert optimal_baseline(q, pi).item() == pytest.approx(best, abs=step)
    # and it does beat COMA's baseline (sum pi Q) on this criterion
    coma_b = float((pi * q).sum())
    assert _grad_variance(logits, q, optimal_baseline(q, pi).item()) <= \
        _grad_variance(logits, q, coma_b) + 1e-9


def test_optimal_baseline_masks_and_deterministic_fallback():
    q = torch.tensor([[1.0, 2.0, float("inf")], [3.0, -1.0, 7.0]])
    pi = torch.tensor([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]])
    b = optimal_baseline(q, pi)
    # two equally likely actions: M equal, so b* is their plain mean; the masked inf never
    # counts. A deterministic policy has no gradient: b* falls back to COMA's Q(u).
    assert b.tolist() == pytest.approx([1.5, -1.0])
    with pytest.raises(ValueError, match="must match"):
        optimal_baseline(q, pi[:, :2])


def test_coma_return_hand_worked():
    q = torch.tensor([[[1.0, 2.0, 4.0]]])  # [T=1, N=1, A=3]
    pi = torch.tensor([[[0.5, 0.25, 0.25]]])
    actions = torch.tensor([[2]])
    x = AdvantageInputs(pi=pi, actions=actions, rewards=torch.zeros(1, 1),
                        terminated=torch.zeros(1, 1, dtype=torch.bool),
                        truncated=torch.zeros(1, 1, dtype=torch.bool),
                        q={"central_q": q}, targets={"central_q": torch.tensor([[3.0]])},
                        next_values={}, gamma=0.9)
    adv, base = ADVANTAGES["coma_return"].fn(x)
    assert base.item() == 2.0 and adv.item() == pytest.approx(1.0)  # 3 - 2
    # = COMA's advantage (4 - 2) + the TD(lambda) error on the taken action (3 - 4)
    adv_ob, base_ob = ADVANTAGES["coma_ob_return"].fn(x)
    assert base_ob.item() == pytest.approx(2.4) and adv_ob.item() == pytest.approx(0.6)
    adv_q, _ = ADVANTAGES["coma_ob"].fn(x)
    assert adv_q.item() == pytest.approx(1.6)  # 4 - 2.4


@pytest.mark.parametrize("advantage", FIXES)
def test_fix_in_a_full_update_matches_slow_reference(advantage, monkeypatch):
    """Learner.update on the ablation tests' tiny fragment (a termination, a truncation,
    the fragment's end): the advantage equals loops over the critic's output, the
    exploring policy and the forward-view TD(lambda) return."""
    ro = tiny_fragment()
    torch.manual_seed(0)
    learner = Learner(SPEC, algo_cfg(advantage))
    assert set(learner.critics) == {"central_q"}
    seen: dict = {}
    original = learner.compute_advantage

    def spy(x):
        result = original(x)
        seen.update(pi=x.pi.detach(), q=x.q["central_q"], nv=x.next_values["central_q"],
                    result=result)
        return result

    monkeypatch.setattr(learner, "compute_advantage", spy)
    before = copy.deepcopy(learner.actor)
    learner.update(ro)
    assert any(not torch.equal(p, p0) for p, p0 in
               zip(learner.actor.parameters(), before.parameters(), strict=True))
    adv, baseline = seen["result"]
    pi, q = seen["pi"], seen["q"]
    for t in range(T):
        for b in range(B):
            for a in range(N):
                p = [float(pi[t, b, a, k]) for k in range(A)]
                qs = [float(q[t, b, a, k]) for k in range(A)]
                if advantage == "coma_return":
                    base = sum(pk * qk for pk, qk in zip(p, qs, strict=True))
                else:
                    sq = sum(pk * pk for pk in p)
                    w = [pk * (1 - 2 * pk + sq) for pk in p]
                    base = sum(wk * qk for wk, qk in zip(w, qs, strict=True)) / sum(w)
                if advantage == "coma_ob":
                    ref = qs[int(ro.actions[t, b, a])] - base
                else:
                    ref = ref_lambda_return(ro.rewards, seen["nv"], ro.terminated,
                                            ro.truncated, t, b, a) - base
                assert float(baseline[t, b, a]) == pytest.approx(base, abs=1e-5)
                assert float(adv[t, b, a]) == pytest.approx(ref, abs=1e-5)


# ---------------------------------------------------------------- config rows
PPO = ["algo.actor_update=ppo", "algo.eps_start=0", "algo.eps_end=0",
       "algo.entropy_coef=0.01", "algo.normalize_advantage=true", "algo.actor_lr=1e-3",
       "algo.critic_updates=2", "train.fragment_len=40", "train.num_envs=128",
       "train.total_env_steps=2000000"]
"""The results page's command for the coma_return row on 2s3z (the SMAX table's MAPPO
settings)."""

JAXMARL = ["train.num_envs=128", "train.fragment_len=128", "algo.actor_lr=0.002",
           "algo.critic_lr=0.002", "algo.entropy_coef=0.0", "algo.td_lambda=0.95",
           "algo.actor_hidden=[128]", "algo.eps_start=0.0", "algo.eps_end=0.0",
           "algo.lr_anneal_steps=2000000", "train.total_env_steps=2000000",
           "algo.grad_clip=0.25", "algo.critic_update=ppo"]
"""The results page's command on 3m: JaxMARL's MAPPO settings (the calibration's)."""


@pytest.mark.parametrize("smax_map,command", [
    ("2s3z", ["algo.advantage=coma_return", *PPO]),
    ("3m", ["algo=coma_ppo", *JAXMARL, "algo.normalize_advantage=true"]),
    ("5m_vs_6m", ["algo=coma_ppo", *JAXMARL, "algo.normalize_advantage=true"]),
])
def test_coma_ppo_preset_is_the_results_page_command(smax_map, command):
    """Each preset equals the page's command for its map but for the names; on 3m and
    5m_vs_6m plus the standardised advantages JaxMARL's settings have (the page's rows
    were made before, with the raw ones: experiments/smax/calibration/README.md)."""
    preset = compose_config([f"+experiment=coma_ppo_smax_{smax_map}"])
    run = compose_config([f"+experiment=coma_smax_{smax_map}", *command])
    assert (preset.algo.name, preset.name) == ("coma_ppo", f"coma_ppo_smax_{smax_map}")
    assert (preset.env, preset.algo.advantage) == (run.env, "coma_return")
    preset.algo.name, preset.name = run.algo.name, run.name
    assert preset.algo == run.algo and preset.train == run.train
    # the paper's COMA is untouched: the default module is still eq. 4 with pg
    plain = compose_config([f"+experiment=coma_smax_{smax_map}"]).algo
    assert (plain.advantage, plain.actor_update) == ("coma", "pg")


@pytest.mark.parametrize("advantage", FIXES)
@pytest.mark.parametrize("override,words", [
    ("algo.critic_update=shared_torso", "single V-critic"),
    ("algo.reinforce.baseline=true", "algo.advantage=reinforce"),
    ("algo.reinforce_baseline=true", "algo.advantage=reinforce"),  # its deprecated name
])
def test_options_that_do_not_apply_are_refused_naming_both(advantage, override, words):
    with pytest.raises(ConfigError) as e:
        compose_config(["+experiment=coma_smax_2s3z", "algo=coma_ppo",
                        f"algo.advantage={advantage}", override])
    msg = str(e.value)
    key = override.split("=")[0]
    assert ComaConfig.FLAT_NAMES.get(key[5:], key[5:]) in msg and words in msg
    assert "\n" not in msg


@pytest.mark.parametrize("advantage", FIXES)
def test_q_critic_options_apply_to_the_fixes(advantage):
    """They read the centralised Q-critic, so the others' best reply applies to them."""
    cfg = compose_config(["+experiment=coma_smax_2s3z", f"algo.advantage={advantage}",
                          "algo.optimistic_others=0.5"])
    assert cfg.algo.optimistic_others == 0.5


# ---------------------------------------------------------------- the diagnosis' bookkeeping
def test_diagnosis_masks_episode_steps_and_fates_hand_worked():
    """One env, T = 6: an episode terminates at t = 2, the next is truncated at t = 4, the
    last runs past the fragment. Agent 1 dies at t = 1 (acts at 0 and 1)."""
    d = load_script("experiments/smax/diagnose.py")
    term = torch.tensor([[False], [False], [True], [False], [False], [False]])
    trunc = torch.tensor([[False], [False], [False], [False], [True], [False]])
    first = torch.tensor([[True], [False], [False], [True], [False], [True]])
    assert d.episode_steps(first)[:, 0].tolist() == [0, 1, 2, 0, 1, 0]
    in_term, in_trunc = d.complete_terminated(term, trunc)
    assert in_term[:, 0].tolist() == [True, True, True, False, False, False]
    assert in_trunc[:, 0].tolist() == [False, False, False, True, True, False]
    alive = torch.ones(6, 1, 2, dtype=torch.bool)
    alive[2, 0, 1] = False  # agent 1 is gone after t = 1 in the first episode
    alive[4, 0, 0] = False  # agent 0 dies at t = 3, in the second episode
    # the learner's "stays": alive at t + 1 (after a terminal step that is the next
    # episode's first situation, so everyone "stays"); agent 1 leaves after t = 1
    stays = torch.cat([alive[1:], torch.ones(1, 1, 2, dtype=torch.bool)])
    fates = d.fate(alive, stays, first)[:, 0]
    assert fates[:2, 1].tolist() == [1, 2]  # dies later, then the step it dies in
    assert fates[:3, 0].tolist() == [0, 0, 0]  # agent 0 survives the first episode
    assert fates[3, 0].item() == 2  # ... and dies in the second one,
    assert fates[3:, 1].tolist() == [0, 0, 0]  # where agent 1 survives
