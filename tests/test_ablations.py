"""The paper's ablations as a switch: advantage modules vs slow references, who sees what,
``algo=<module>`` with any experiment, and the slacker experiment's premise."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from conftest import compose, load_script
from rollouts import random_rollout
from torch.nn import functional as F

from marl.algos.coma.advantages import ADVANTAGES
from marl.algos.coma.config import ComaConfig
from marl.algos.coma.critics import CriticBatch, CriticNet, local_inputs
from marl.algos.coma.learner import Learner, update_metrics
from marl.config import to_config
from marl.core.rollout import Rollout
from marl.envs.base import EnvSpec

T, B, N, O, S, A = 4, 3, 2, 3, 4, 3  # noqa: E741 - the shape letters of the docs
SPEC = EnvSpec(agents=("a", "b"), obs_shape=(O,), state_dim=S, n_actions=A)
ABLATIONS = ("coma", "central_qv", "central_v", "iac_v", "iac_q")
GAMMA, LAM, EPS = 0.9, 0.7, 0.2


def tiny_fragment(seed: int = 0) -> Rollout:
    """T=4 steps of B=3 envs: env 0 terminates at t=1, env 1 is truncated at t=2, env 2
    runs through (its last step bootstraps from the next fragment's first state)."""
    return random_rollout(T, B, N, O, S, A, term_at=(1, 0), trunc_at=(2, 1), seed=seed,
                          eps=EPS)


def algo_cfg(advantage: str) -> ComaConfig:
    return ComaConfig(advantage=advantage, gamma=GAMMA, td_lambda=LAM, eps_start=EPS,
                      eps_end=EPS, eps_anneal_steps=0, actor_hidden=[8], critic_hidden=[8])


# ---------------------------------------------------------------- slow references
def ref_critic_input(kind: str, state, obs, actions, prev, a: int) -> torch.Tensor:
    """Agent a's critic input at one (t, b), built element by element."""
    def one_hot(u: int) -> list[float]:  # u == A means "none": all zeros
        return [1.0 if i == u else 0.0 for i in range(A)]

    agent_id = [1.0 if i == a else 0.0 for i in range(N)]
    if kind == "central_q":
        x = list(state) + list(obs[a])
        for b in range(N):  # the others' current actions, a's own slot zeroed
            x += [0.0] * A if b == a else one_hot(int(actions[b]))
        for b in range(N):  # the previous joint action
            x += one_hot(int(prev[b]))
        return torch.tensor(x + agent_id)
    if kind == "central_v":
        return torch.tensor(list(state) + agent_id)
    return torch.tensor(list(obs[a]) + one_hot(int(prev[a])) + agent_id)  # local_*


def ref_lambda_return(rewards, next_values, term, trunc, t: int, b: int, a: int) -> float:
    """Forward view: G^lambda_t = (1 - lam) sum_{n<h} lam^(n-1) G^(n)_t + lam^(h-1) G^(h)_t,
    h = steps to the episode end or the fragment end (whichever first), G^(n) the n-step
    return bootstrapped from next_values (nothing after a terminal step)."""
    h = 1
    while t + h - 1 < T - 1 and not (term[t + h - 1, b] or trunc[t + h - 1, b]):
        h += 1

    def n_step(n: int) -> float:
        g = sum(GAMMA ** k * float(rewards[t + k, b, a]) for k in range(n))
        if not term[t + n - 1, b]:
            g += GAMMA ** n * float(next_values[t + n - 1, b, a])
        return g

    g = sum((1 - LAM) * LAM ** (n - 1) * n_step(n) for n in range(1, h))
    return g + LAM ** (h - 1) * n_step(h)


@pytest.mark.parametrize("advantage", ABLATIONS)
def test_update_matches_slow_reference(advantage, monkeypatch):
    """A full Learner.update on a tiny fragment: critic outputs, TD(lambda) targets,
    exploring policy and the advantage all equal element-by-element loops."""
    ro = tiny_fragment()
    torch.manual_seed(0)
    learner = Learner(SPEC, algo_cfg(advantage))
    before = copy.deepcopy(learner)  # the networks as the update's forward pass sees them
    seen: dict = {}
    original = learner.compute_advantage

    def spy(x):
        result = original(x)
        seen.update(pi=x.pi.detach(), out=x.q, targets=x.targets, next_values=x.next_values,
                    result=result)
        return result

    monkeypatch.setattr(learner, "compute_advantage", spy)
    metrics = update_metrics(learner.update(ro), SPEC)
    assert all(math.isfinite(v) for v in metrics.values())
    kinds = ADVANTAGES[advantage].critics
    assert set(learner.critics) == set(kinds)
    adv, baseline = seen["result"]
    assert adv.shape == baseline.shape == (T, B, N)

    # exploring policy: (1 - eps) softmax + eps / |A|
    with torch.no_grad():
        logits, _ = before.actor.unroll(ro.obs[:-1], ro.prev_actions[:-1], ro.first[:-1], ro.h0)
    for t in range(T):
        for b in range(B):
            for a in range(N):
                z = [math.exp(float(v)) for v in logits[t, b, a]]
                ref = [(1 - EPS) * v / sum(z) + EPS / A for v in z]
                torch.testing.assert_close(seen["pi"][t, b, a], torch.tensor(ref))

    # critic outputs before this fragment's critic step, from inputs built by hand
    for kind in kinds:
        mlp = before.critics[kind].net.mlp
        for t in range(T):
            for b in range(B):
                for a in range(N):
                    x = ref_critic_input(kind, ro.state[t, b], ro.obs[t, b], ro.actions[t, b],
                                         ro.prev_actions[t, b], a)
                    torch.testing.assert_close(seen["out"][kind][t, b, a], mlp(x).detach())

    # TD(lambda) targets from the target critic's next values (forward view)
    for kind in kinds:
        for t in range(T):
            for b in range(B):
                for a in range(N):
                    ref = ref_lambda_return(ro.rewards, seen["next_values"][kind],
                                            ro.terminated, ro.truncated, t, b, a)
                    assert float(seen["targets"][kind][t, b, a]) == pytest.approx(ref, abs=1e-5)

    # the advantage itself
    pi, out, targets = seen["pi"], seen["out"], seen["targets"]
    for t in range(T):
        for b in range(B):
            for a in range(N):
                u = int(ro.actions[t, b, a])
                if advantage in ("coma", "iac_q"):
                    q = out["central_q" if advantage == "coma" else "local_q"][t, b, a]
                    base = sum(float(pi[t, b, a, k]) * float(q[k]) for k in range(A))
                    ref = float(q[u]) - base
                elif advantage == "central_qv":
                    base = float(out["central_v"][t, b, a, 0])
                    ref = float(out["central_q"][t, b, a, u]) - base
                else:
                    kind = "central_v" if advantage == "central_v" else "local_v"
                    base = float(out[kind][t, b, a, 0])
                    ref = float(targets[kind][t, b, a]) - base
                assert float(adv[t, b, a]) == pytest.approx(ref, abs=1e-5)
                assert float(baseline[t, b, a]) == pytest.approx(base, abs=1e-5)


@pytest.mark.parametrize("advantage", ABLATIONS)
def test_update_changes_actor_and_every_critic(advantage):
    ro = tiny_fragment(1)
    torch.manual_seed(0)
    learner = Learner(SPEC, algo_cfg(advantage))
    before = {k: [p.clone() for p in c.net.parameters()] for k, c in learner.critics.items()}
    actor0 = [p.clone() for p in learner.actor.parameters()]
    m = update_metrics(learner.update(ro), SPEC)
    assert any(not torch.equal(a, b) for a, b in zip(actor0, learner.actor.parameters(),
                                                     strict=True))
    for k, c in learner.critics.items():
        assert any(not torch.equal(a, b) for a, b in zip(before[k], c.net.parameters(),
                                                         strict=True)), k
        assert f"loss/critic_{k}" in m
    assert {f"credit/{a}/advantage_mean" for a in SPEC.agents} <= set(m)


# ---------------------------------------------------------------- information flow
def _batch(seed: int) -> CriticBatch:
    g = torch.Generator().manual_seed(seed)
    return CriticBatch(torch.randn(B, S, generator=g), torch.randn(B, N, O, generator=g),
                       torch.randint(0, A, (B, N), generator=g),
                       torch.randint(0, A + 1, (B, N), generator=g))


def _others_changed(x: CriticBatch, a: int) -> CriticBatch:
    """Everything that is not agent a's own: state, others' obs, all current actions,
    others' previous actions."""
    y = CriticBatch(x.state + 1.0, x.obs.clone(), (x.actions + 1) % A, x.prev_actions.clone())
    for b in range(N):
        if b != a:
            y.obs[:, b] += 2.0
            y.prev_actions[:, b] = (y.prev_actions[:, b] + 1) % (A + 1)
    return y


@pytest.mark.parametrize("kind", ["local_q", "local_v"])
def test_independent_critic_never_sees_other_agents(kind):
    torch.manual_seed(0)
    net = CriticNet(kind, SPEC, [16])
    x = _batch(0)
    for a in range(N):
        y = _others_changed(x, a)
        torch.testing.assert_close(net(y)[:, a], net(x)[:, a], rtol=0, atol=0)
        torch.testing.assert_close(local_inputs(y.obs, y.prev_actions, A)[:, a],
                                   local_inputs(x.obs, x.prev_actions, A)[:, a], rtol=0, atol=0)
        own = CriticBatch(x.state, x.obs.clone(), x.actions, x.prev_actions)
        own.obs[:, a] += 1.0  # its own observation does reach it
        assert not torch.allclose(net(own)[:, a], net(x)[:, a])


def test_central_v_sees_no_actions_and_no_observations():
    torch.manual_seed(0)
    net = CriticNet("central_v", SPEC, [16])
    x = _batch(1)
    y = CriticBatch(x.state, x.obs + 5.0, (x.actions + 1) % A, (x.prev_actions + 1) % (A + 1))
    torch.testing.assert_close(net(y), net(x), rtol=0, atol=0)
    z = CriticBatch(x.state + 1.0, x.obs, x.actions, x.prev_actions)
    assert not torch.allclose(net(z), net(x))


def test_central_q_sees_others_actions_not_its_own():
    torch.manual_seed(0)
    net = CriticNet("central_q", SPEC, [16])
    x = _batch(2)
    for a in range(N):
        y = CriticBatch(x.state, x.obs, x.actions.clone(), x.prev_actions)
        y.actions[:, a] = (y.actions[:, a] + 1) % A
        torch.testing.assert_close(net(y)[:, a], net(x)[:, a], rtol=0, atol=0)
        other = 1 - a
        assert not torch.allclose(net(y)[:, other], net(x)[:, other])


def test_input_dims_follow_the_builders():
    x = _batch(3)
    for kind, dim in (("central_q", S + O + 2 * N * A + N), ("central_v", S + N),
                      ("local_q", O + A + N), ("local_v", O + A + N)):
        assert CriticNet(kind, SPEC, [4]).inputs(x).shape == (B, N, dim)
    assert F.one_hot(torch.tensor(0), A).shape == (A,)


# ---------------------------------------------------------------- configs
_compose = compose


@pytest.mark.parametrize("experiment", [None, "coma_boxpush", "coma_boxpush_slacker"])
@pytest.mark.parametrize("algo", ABLATIONS)
def test_algo_switch_works_with_any_experiment(algo, experiment):
    overrides = [f"algo={algo}"] + ([f"+experiment={experiment}"] if experiment else [])
    cfg = to_config(_compose(overrides))
    assert cfg.algo.name == cfg.algo.advantage == algo
    if experiment:  # the experiment's task settings win over the algo file's defaults
        base = to_config(_compose([f"+experiment={experiment}"]))
        mine = {k: v for k, v in vars(cfg.algo).items() if k not in ("name", "advantage")}
        theirs = {k: v for k, v in vars(base.algo).items() if k not in ("name", "advantage")}
        assert mine == theirs
        assert cfg.name == experiment and cfg.env == base.env


# ---------------------------------------------------------------- slacker premise
def _scripted():
    return load_script("experiments/credit_assignment/scripted.py")


def test_slacker_experiment_makes_loitering_cost_return():
    """On coma_boxpush_slacker a pair where one robot idles scores clearly less than a
    pair where both push; on coma_boxpush an idler that keeps out of the way costs
    (almost) nothing -- which is why the slacker variant exists."""
    mod = _scripted()
    slacker = mod.env_config("coma_boxpush_slacker")
    assert slacker.step_penalty > 0 and slacker.max_steps < 50
    both = mod.scripted_eval(slacker, "both push", episodes=400, seed=1)
    idle = mod.scripted_eval(slacker, "one idles", episodes=400, seed=1)
    aside = mod.scripted_eval(slacker, "one idles, out of the way", episodes=400, seed=1)
    assert both["eval/success_rate"] >= 0.99
    assert both["eval/return_mean"] > aside["eval/return_mean"] + 0.07
    assert aside["eval/return_mean"] > idle["eval/return_mean"]
    # credit metrics tell who worked: equal shares vs one robot doing everything
    assert both["eval/credit/robot_0/push_share"] == pytest.approx(0.5, abs=0.05)
    assert idle["eval/credit/robot_0/push_share"] == 1.0
    assert idle["eval/credit/robot_1/idle_rate"] == 1.0
    for m in (both, idle, aside):
        total = m["eval/credit/robot_0/push_share"] + m["eval/credit/robot_1/push_share"]
        assert total == pytest.approx(1.0)
    default = mod.env_config("coma_boxpush")
    d_both = mod.scripted_eval(default, "both push", episodes=400, seed=1)
    d_aside = mod.scripted_eval(default, "one idles, out of the way", episodes=400, seed=1)
    assert d_both["eval/return_mean"] - d_aside["eval/return_mean"] < 0.02


# ------------------------------------------------------- how a policy's losses fail
def _failures():
    from marl.analysis import failures
    return failures


@pytest.mark.parametrize(("robots", "box", "actions", "kind"), [
    # 5x5; actions 1 up, 2 down, 3 left, 4 right; y = 0 is the top row
    ([(2, 3), (1, 2)], (2, 2), (1, 4), "conflict"),      # up and right at once
    ([(2, 3), (3, 2)], (2, 2), (1, 3), "conflict"),      # up and left
    ([(2, 1), (0, 0)], (2, 0), (1, 0), "into wall"),     # up, off the top row
    ([(2, 3), (2, 1)], (2, 2), (1, 0), "blocked"),       # up, into a robot that stays
    ([(0, 0), (3, 2)], (2, 2), (0, 3), "other push"),    # robot_1 alone, left, free cell
    ([(1, 2), (3, 2)], (2, 2), (0, 3), "blocked"),       # the same into robot_0, waiting
    ([(2, 3), (2, 3)], (2, 2), (1, 1), "other push"),    # both up from one cell
    ([(2, 3), (0, 0)], (2, 2), (1, 0), "other push"),    # alone, up, free cell
    ([(2, 3), (1, 2)], (2, 2), (0, 0), "no push"),       # beside the box, waiting
    ([(0, 0), (4, 4)], (2, 2), (4, 1), "no push"),       # moving elsewhere
])
def test_failure_step_kinds_hand_worked(robots, box, actions, kind):
    mod = _failures()
    got = mod.classify_step(np.array([robots]), np.array([box]), np.array([actions]), 5, 5)
    assert mod.KINDS[int(got[0])] == kind


def test_failure_step_kinds_agree_with_the_env():
    """On random play, a step is "other push" whenever the box moved, and the box never
    moves on a conflict, a push into the wall or into a waiting robot, or with no push;
    positions() reads the env's global state back into the cells the env uses."""
    from marl.envs import make_vec_env
    mod = _failures()
    cfg = _scripted().env_config("coma_boxpush")
    env = make_vec_env(cfg, 256, seed=3)
    buf = env.reset(seed=3)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        robots, box, _ = mod.positions(buf.state, cfg.width, cfg.height)
        t0 = buf.state[:, 8].copy()
        actions = rng.integers(0, 5, (256, 2))
        kind = mod.classify_step(robots, box, actions, cfg.width, cfg.height)
        env.step(actions)
        _, box_after, _ = mod.positions(buf.state, cfg.width, cfg.height)
        same_episode = ~(buf.terminated | buf.truncated)
        moved = np.any(box_after != box, -1) & same_episode
        assert np.all(kind[moved] == mod.KINDS.index("other push"))
        still = same_episode & (kind != mod.KINDS.index("other push"))
        assert not np.any(moved[still])
        assert np.all(buf.state[same_episode, 8] > t0[same_episode])
        seen.update(mod.KINDS[k] for k in np.unique(kind))
    assert seen == set(mod.KINDS)
