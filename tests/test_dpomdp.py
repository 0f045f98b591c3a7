"""Tests of the Dec-POMDP env: the .dpomdp loader, the batched core, the PettingZoo front
end, the exact evaluator and the reference values."""

from __future__ import annotations

import gzip
import math
import pickle

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

from marl.envs import ENV_CONFIGS, make_vec_env
from marl.envs.base import VecEnv
from marl.envs.dpomdp import PROBLEMS, PROBLEMS_DIR, DPOMDPEnvConfig
from marl.envs.dpomdp.core import DPOMDPCore, encode_history
from marl.envs.dpomdp.evaluate import (
    actor_from_policy,
    brute_force_optimum,
    monte_carlo_value,
    open_loop_value,
    policy_from_actor,
    policy_value,
    random_value,
)
from marl.envs.dpomdp.parallel import DPOMDPEnv, parallel_env
from marl.envs.dpomdp.parser import DPOMDPParseError, load, parse
from marl.envs.dpomdp.values import REFERENCE, reference, score
from marl.schema import ConfigError

LISTEN, OPEN_LEFT, OPEN_RIGHT = 0, 1, 2
TIGER_LEFT, TIGER_RIGHT = 0, 1
HEAR_LEFT, HEAR_RIGHT = 0, 1


@pytest.fixture(scope="module")
def tiger():
    return load(PROBLEMS_DIR / "dectiger.dpomdp")


def core(problem="dectiger", horizon=3, num_envs=1, seed=0, **kw):
    return DPOMDPCore(DPOMDPEnvConfig(problem=problem, horizon=horizon), num_envs=num_envs,
                      seed=seed, **kw)


# ---------------------------------------------------------------------- Dec-Tiger by hand
def test_dectiger_tables_worked_out_by_hand(tiger):
    m = tiger
    assert m.agents == ("agent_0", "agent_1")
    assert m.states == ("tiger-left", "tiger-right")
    assert m.actions == (("listen", "open-left", "open-right"),) * 2
    assert m.observations == (("hear-left", "hear-right"),) * 2
    np.testing.assert_allclose(m.start, [0.5, 0.5])
    ll = m.joint_action([LISTEN, LISTEN])
    assert ll == 0 and m.joint_action([OPEN_RIGHT, OPEN_LEFT]) == 7
    # listening keeps the tiger where it is; any door opened resets it uniformly
    np.testing.assert_allclose(m.transition[:, ll, :], np.eye(2))
    for ja in range(1, 9):
        np.testing.assert_allclose(m.transition[:, ja, :], 0.5)
    # each agent hears the right side with 0.85, independently: 0.85^2, 0.85 * 0.15, ...
    jo = m.joint_obs
    o = m.observation[ll, TIGER_LEFT]
    assert o[jo([HEAR_LEFT, HEAR_LEFT])] == pytest.approx(0.85 ** 2)
    assert o[jo([HEAR_LEFT, HEAR_RIGHT])] == pytest.approx(0.85 * 0.15)
    assert o[jo([HEAR_RIGHT, HEAR_RIGHT])] == pytest.approx(0.15 ** 2)
    marginal = m.observation[ll].reshape(2, 2, 2).sum(2)  # [s', agent 0's observation]
    np.testing.assert_allclose(marginal, [[0.85, 0.15], [0.15, 0.85]])
    np.testing.assert_allclose(m.observation[m.joint_action([OPEN_LEFT, LISTEN])], 0.25)
    r = m.reward
    assert r[TIGER_LEFT, ll] == r[TIGER_RIGHT, ll] == -2
    assert r[TIGER_LEFT, m.joint_action([OPEN_RIGHT, OPEN_RIGHT])] == 20
    assert r[TIGER_LEFT, m.joint_action([OPEN_LEFT, OPEN_LEFT])] == -50
    assert r[TIGER_RIGHT, m.joint_action([OPEN_LEFT, OPEN_RIGHT])] == -100
    assert r[TIGER_LEFT, m.joint_action([LISTEN, OPEN_RIGHT])] == 9
    assert r[TIGER_RIGHT, m.joint_action([LISTEN, OPEN_RIGHT])] == -101
    assert m.reward_full is None and m.discount == 1.0


def test_dectiger_core_steps_by_hand():
    c = core(horizon=3, num_envs=4)
    c.set_hidden(TIGER_LEFT)
    buf = c.step(np.zeros((4, 2), np.int64))  # listen listen
    assert (c.hidden_states() == TIGER_LEFT).all()  # listening keeps the tiger
    np.testing.assert_array_equal(buf.reward, -2.0)
    c.set_hidden(TIGER_LEFT)
    buf = c.step(np.full((4, 2), OPEN_RIGHT))  # the right door hides no tiger
    np.testing.assert_array_equal(buf.reward, 20.0)
    c.set_hidden(np.array([TIGER_LEFT, TIGER_RIGHT, TIGER_LEFT, TIGER_RIGHT]))
    buf = c.step(np.array([[OPEN_LEFT] * 2, [OPEN_LEFT] * 2, [LISTEN, OPEN_RIGHT],
                           [OPEN_RIGHT, OPEN_LEFT]]))
    np.testing.assert_array_equal(buf.reward[:, 0], [-50, 20, 9, -100])
    assert not buf.terminated.any() and not buf.truncated.any()


def test_dectiger_listening_frequencies_match_the_model():
    n = 40_000
    c = core(horizon=2, num_envs=n, seed=1)
    c.set_hidden(TIGER_LEFT)
    c.step(np.zeros((n, 2), np.int64))
    seen = c.observation_indices()
    p = 0.85
    tol = 4 * math.sqrt(p * (1 - p) / n)
    assert abs((seen[:, 0] == HEAR_LEFT).mean() - p) < tol
    assert abs((seen[:, 1] == HEAR_LEFT).mean() - p) < tol
    both = ((seen[:, 0] == HEAR_LEFT) & (seen[:, 1] == HEAR_LEFT)).mean()
    assert abs(both - p * p) < 4 * math.sqrt(p * p * (1 - p * p) / n)
    # opening a door resets the tiger to either side with probability 1/2, and the joint
    # observation is uniform and independent of where the tiger went: 1/8 per pair
    c.set_hidden(TIGER_LEFT)
    c.step(np.full((n, 2), OPEN_LEFT))
    assert abs((c.hidden_states() == TIGER_LEFT).mean() - 0.5) < 4 * math.sqrt(0.25 / n)
    seen = c.observation_indices()
    cell = c.hidden_states() * 4 + seen[:, 0] * 2 + seen[:, 1]
    freq = np.bincount(cell, minlength=8) / n
    assert np.abs(freq - 1 / 8).max() < 4 * math.sqrt(1 / 8 * 7 / 8 / n)


@pytest.mark.parametrize("problem", ["recycling", "GridSmall"])
def test_core_transition_and_observation_frequencies_match_the_model(problem):
    n = 20_000
    c = core(problem, horizon=3, num_envs=n, seed=2)
    m = c.model
    rng = np.random.default_rng(0)
    for _ in range(3):
        s = int(rng.integers(m.n_states))
        acts = [int(rng.integers(k)) for k in m.n_actions]
        ja = m.joint_action(acts)
        c.set_hidden(s)
        buf = c.step(np.tile(acts, (n, 1)))
        s2 = c.hidden_states()
        jo = np.ravel_multi_index(tuple(c.observation_indices().T), m.n_obs)
        p_s = m.transition[s, ja]
        freq = np.bincount(s2, minlength=m.n_states) / n
        assert np.all(np.abs(freq - p_s) <= 4 * np.sqrt(p_s * (1 - p_s) / n) + 1e-12)
        for state in np.unique(s2)[:3]:  # O(. | ja, s') among the envs that reached s'
            k = int((s2 == state).sum())
            p_o = m.observation[ja, state]
            f = np.bincount(jo[s2 == state], minlength=m.n_joint_obs) / k
            assert np.all(np.abs(f - p_o) <= 4 * np.sqrt(p_o * (1 - p_o) / k) + 1e-12)
        # the reward paid is R(s, ja, s', jo) (GridSmall: 1 on reaching a meeting cell)
        if m.reward_full is None:
            np.testing.assert_allclose(buf.reward[:, 0], m.reward[s, ja], rtol=1e-6)
        else:
            want = m.reward_full[s, ja, s2, jo]
            np.testing.assert_allclose(buf.reward[:, 0], want, rtol=1e-6)
            assert buf.reward.mean() == pytest.approx(m.reward[s, ja], abs=0.02)


# ---------------------------------------------------------------------- the core's layout
def test_observations_states_and_episode_end():
    h = 3
    c = core(horizon=h, num_envs=5, seed=3)
    m, spec = c.model, c.spec
    assert isinstance(c, VecEnv)
    assert spec.obs_shape == (2 + 1 + h,) and spec.state_dim == 2 + h
    assert spec.episode_limit == h and spec.episode_metrics == ("team_return",)
    assert not spec.has_action_mask and spec.n_actions == 3
    hist = [[(), ()] for _ in range(5)]
    total = np.zeros(5)
    buf = c.buf
    for t in range(h):
        s = c.hidden_states()
        for e in range(5):
            for i in range(2):
                np.testing.assert_array_equal(buf.obs[e, i], encode_history(m, h, hist[e][i])[-1])
            want = np.zeros(2 + h, np.float32)
            want[s[e]] = want[2 + t] = 1
            np.testing.assert_array_equal(buf.state[e], want)
        assert buf.obs[:, :, 2].all() == (t == 0)  # the "none yet" slot only at t = 0
        buf = c.step(np.zeros((5, 2), np.int64))
        total += buf.reward[:, 0]
        seen = c.observation_indices()
        for e in range(5):
            hist[e] = [hist[e][i] + (int(seen[e, i]),) for i in range(2)]
        assert buf.terminated.all() == (t == h - 1) and not buf.truncated.any()
    # the last step terminated every episode: final observations are a real observation
    # without a step slot (t = H), and the envs auto-reset (no observation yet)
    np.testing.assert_array_equal(buf.final_obs[:, :, 3:], 0)
    np.testing.assert_array_equal(buf.final_obs[:, :, :2].sum(-1), 1)
    np.testing.assert_array_equal(buf.final_state[:, 2:], 0)
    np.testing.assert_array_equal(buf.final_state[:, :2].sum(-1), 1)
    assert (c.observation_indices() == -1).all()
    assert encode_history(m, h, (0, 1, 1))[-1].tolist() == [0, 1, 0, 0, 0, 0]
    np.testing.assert_allclose(buf.episode["team_return"], total)
    np.testing.assert_array_equal(total, -2.0 * h)
    # auto-reset: the next episode has started at t = 0
    assert (c.steps() == 0).all() and buf.obs[:, :, 2].all() and buf.obs[:, :, 3].all()


def test_no_autoreset_and_actions_checked():
    c = core(horizon=1, num_envs=2, autoreset=False)
    buf = c.step(np.zeros((2, 2), np.int64))
    assert buf.terminated.all() and not buf.alive.any()
    with pytest.raises(RuntimeError, match="reset"):
        c.step(np.zeros((2, 2), np.int64))
    c.reset()
    with pytest.raises(ValueError, match="invalid action 3 for agent 'agent_1'"):
        c.step(np.array([[0, 3], [0, 0]]))


def test_unequal_action_counts_are_masked(tmp_path):
    path = tmp_path / "uneven.dpomdp"
    path.write_text("agents: 2\ndiscount: 1\nvalues: reward\nstates: 2\nstart:\nuniform\n"
                    "actions:\n3\n2\nobservations:\n2\n3\nT: * :\nuniform\nO: * :\nuniform\n"
                    "R: * : * : * : * : 1\n")
    c = DPOMDPCore(DPOMDPEnvConfig(problem=str(path), horizon=2), num_envs=2)
    assert c.spec.has_action_mask and c.spec.n_actions == 3 and c.spec.obs_shape == (6,)
    np.testing.assert_array_equal(c.buf.action_mask[0], [[1, 1, 1], [1, 1, 0]])
    with pytest.raises(ValueError, match="masked for agent 'agent_1'"):
        c.step(np.array([[2, 2], [0, 0]]))
    env = DPOMDPEnv(problem=str(path), horizon=2)
    assert [env.action_space(a).n for a in env.possible_agents] == [3, 2]
    parallel_api_test(env, num_cycles=20)


def test_get_state_set_state_continues_exactly():
    a = core("recycling", horizon=4, num_envs=6, seed=5)
    rng = np.random.default_rng(0)
    acts = rng.integers(0, 3, (12, 6, 2))
    for t in range(5):
        a.step(acts[t])
    saved = pickle.loads(pickle.dumps(a.get_state()))
    b = core("recycling", horizon=4, num_envs=6, seed=99)
    b.set_state(saved)
    for t in range(5, 12):
        ba, bb = a.step(acts[t]), b.step(acts[t])
        for k in ("obs", "state", "reward", "terminated"):
            np.testing.assert_array_equal(getattr(ba, k), getattr(bb, k))
    with pytest.raises(ValueError, match="horizon"):
        core("recycling", horizon=3, num_envs=6).set_state(saved)


def test_registry_builds_the_core():
    assert ENV_CONFIGS["dpomdp"] is DPOMDPEnvConfig
    env = make_vec_env(DPOMDPEnvConfig(problem="GridSmall", horizon=2), num_envs=3, seed=0)
    assert isinstance(env, DPOMDPCore) and env.spec.state_dim == 16 + 2
    assert env.spec.obs_shape == (2 + 1 + 2,)


# ---------------------------------------------------------------------- PettingZoo
@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_pettingzoo_parallel_api_and_seed(problem):
    env = parallel_env(problem=problem, horizon=3, render_mode="ansi")
    parallel_api_test(env, num_cycles=200)
    parallel_seed_test(lambda: DPOMDPEnv(problem=problem, horizon=3))
    env.reset(seed=0)
    assert "t=0/3" in env.render()
    _, _, term, trunc, infos = env.step(dict.fromkeys(env.agents, 0))
    assert not any(term.values()) and not any(trunc.values())


def test_pettingzoo_episode_ends_by_termination_at_the_horizon():
    env = DPOMDPEnv(problem="dectiger", horizon=2)
    env.reset(seed=0)
    env.step({a: 0 for a in env.agents})
    _, rewards, term, trunc, infos = env.step({a: 0 for a in env.agents})
    assert all(term.values()) and not any(trunc.values()) and env.agents == []
    assert rewards == {"agent_0": -2.0, "agent_1": -2.0}
    assert infos["agent_0"]["team_return"] == -4.0


# ---------------------------------------------------------------------- config
def test_config_names_paths_and_refusals(tmp_path):
    assert DPOMDPEnvConfig(problem="DecTiger").problem == "dectiger"
    assert DPOMDPEnvConfig(problem="gridsmall").path == PROBLEMS_DIR / "GridSmall.dpomdp"
    with pytest.raises(ConfigError, match=r"env.horizon = 0 is invalid: must be an int >= 1"):
        DPOMDPEnvConfig(horizon=0)
    with pytest.raises(ConfigError) as e:
        DPOMDPEnvConfig(problem="tiger")
    msg = str(e.value)
    assert "\n" not in msg and "'tiger'" in msg
    assert all(name in msg for name in PROBLEMS)
    with pytest.raises(ConfigError, match="no such file"):
        DPOMDPEnvConfig(problem=str(tmp_path / "missing.dpomdp"))


def test_gzipped_file_loads(tmp_path):
    path = tmp_path / "dectiger.dpomdp.gz"
    path.write_bytes(gzip.compress((PROBLEMS_DIR / "dectiger.dpomdp").read_bytes()))
    m = load(path)
    assert m.name == "dectiger"
    assert m.digest() == load(PROBLEMS_DIR / "dectiger.dpomdp").digest()
    c = DPOMDPCore(DPOMDPEnvConfig(problem=str(path), horizon=2), num_envs=2)
    assert c.model.digest() == m.digest()


# ---------------------------------------------------------------------- the loader
EXAMPLE_FIXES = [  # MADP's example.dpomdp demonstrates syntax with out-of-range indices
    (199, "T: 1 2 :", "T: 1 1 :"),
    (243, "O: 1 2 :", "O: 1 1 :"),
    (262, "R: * : 1 : 3 :", "R: * : 1 : 1 :"),
    (270, "R: 0 2: 1", "R: 0 1: 1"),
    (273, "R: 1 2: 0", "R: 1 1: 0"),
]


def test_example_dpomdp_errors_name_each_bad_line_then_parses(tmp_path):
    text = (PROBLEMS_DIR / "example.dpomdp").read_text()
    path = tmp_path / "example.dpomdp"
    for line, bad, good in EXAMPLE_FIXES:
        path.write_text(text)
        with pytest.raises(DPOMDPParseError) as e:
            load(path, strict=False)
        assert str(e.value).startswith(f"{path}:{line}: expected ")
        assert e.value.line == line and "\n" not in str(e.value)
        lines = text.split("\n")
        assert lines[line - 1].startswith(bad)
        lines[line - 1] = lines[line - 1].replace(bad, good, 1)
        text = "\n".join(lines)
    path.write_text(text)
    # its numbers are a syntax demo: strict loading finds T(.|s0, ja=1) sums to 0.999
    with pytest.raises(DPOMDPParseError, match=r":205: expected the probabilities T\(\. \| "
                                               r"s=state-one, ja=agent1-a1 1\) to sum to 1"):
        load(path)
    m = load(path, strict=False)
    assert m.agents == ("agent_0", "agent_1") and m.states == ("state-one", "s2")
    assert m.actions == (("agent1-a1", "a12", "a13"), ("0", "1"))
    assert m.observations == (("0", "1"), ("hear-left", "hear-right"))
    np.testing.assert_array_equal(m.start, [1.0, 0.0])  # start exclude: s2
    T, Ob, R = m.transition, m.observation, m.reward_full
    ja = m.joint_action
    np.testing.assert_allclose(T[0, 1], [0.123, 0.876])  # joint index 1 = (0, 1)
    np.testing.assert_allclose(T[1, 1], [0.5, 0.5])  # T: * * : * : * : 0.5
    np.testing.assert_allclose(T[:, 2], np.eye(2))  # T: 2 : identity
    assert ja([1, 1]) == 3  # "T: 3 :" overwrites the entries "T: 1 1 : 0 : ..." set
    np.testing.assert_allclose(T[:, 3], [[0.2222, 0.2233], [0.2244, 0.2255]])
    np.testing.assert_allclose(Ob[ja([1, 1])], [[0.1, 0.8, 0.05, 0.05], [0.6, 0.3, 0.06, 0.04]])
    np.testing.assert_allclose(Ob[ja([0, 0])], 0.9)  # O: 0 0 : * : * : 0.9
    np.testing.assert_allclose(Ob[ja([2, 1])], 0.25)  # O: * 1 : uniform over 4 joint obs
    assert m.reward_full is not None  # R: * : s2 : has end-state specific rows
    assert R[0, ja([0, 0])].tolist() == [[-50] * 4] * 2
    assert R[1, ja([0, 1])].tolist() == [[20] * 4] * 2  # "+20"
    assert R[0, ja([1, 0])].tolist() == [[-100] * 4] * 2
    assert R[1, ja([1, 0])].tolist() == [[-2] * 4] * 2  # R: a12 0 : * : * : * : -2
    assert R[1, ja([0, 0])].tolist() == [[4.3, 34.2, 253, 12], [5.3, 2352, 2.3, 1.2]]


ALL_FORMS = """\
# every form of the grammar, checked entry by entry below
agents: alice bob
discount: 0.95
values: reward
states: s0 s1 s2
start include: s0 2
actions:
2
go stay wait
observations:
lo hi
2
T: * :
uniform
T: 0 go :
identity
T: 1 * :
0.5 0.5 0
0 1 0
0.2 0.3 0.5
T: 0 stay : s1 :
0.1 0.2 0.7
T: 0 wait : * :
uniform
T: 4 : 2 : s0 : 0.25
T: 4 : 2 : 1 : .75
T: 4 : 2 : s2 : 0
O: * :
uniform
O: 0 go : s1 :
0.4 0.3 0.2 0.1
O: 1 * : * : lo * : 0.25
O: 1 * : * : hi 0 : 1e-1
O: 1 * : * : 3 : 0.4
O: 2 :
1 0 0 0
0 1 0 0
0 0 0 1
O: 0 wait : s2 :
uniform
R: * : * : * : * : -1
R: 0 go : s0 : * : * : +5
R: 1 go : s2 : s2 : * : 2
R: 1 stay : s2 : s0 :
1 2 3 4
R: 5 : * :
0 0 0 0
0 0 0 10
0 0 0 0
"""


def test_every_grammar_form_by_hand():
    m = parse(ALL_FORMS, source="forms.dpomdp")
    assert m.agents == ("alice", "bob") and m.discount == 0.95
    assert m.actions == (("0", "1"), ("go", "stay", "wait"))
    assert m.observations == (("lo", "hi"), ("0", "1"))
    np.testing.assert_allclose(m.start, [0.5, 0, 0.5])  # start include: s0 2
    T, Ob, R = m.transition, m.observation, m.reward
    # joint actions: a0 * 3 + a1 (the last agent fastest)
    np.testing.assert_allclose(T[:, 0], np.eye(3))
    np.testing.assert_allclose(T[:, 5], [[0.5, 0.5, 0], [0, 1, 0], [0.2, 0.3, 0.5]])
    np.testing.assert_allclose(T[2, 4], [0.25, 0.75, 0])  # the entries overwrite row s2
    np.testing.assert_allclose(T[1, 1], [0.1, 0.2, 0.7])
    np.testing.assert_allclose(T[0, 1], [1 / 3] * 3)
    np.testing.assert_allclose(T[:, 2], 1 / 3)
    # joint observations: o0 * 2 + o1
    np.testing.assert_allclose(Ob[0, 1], [0.4, 0.3, 0.2, 0.1])
    np.testing.assert_allclose(Ob[0, 0], 0.25)
    np.testing.assert_allclose(Ob[3:, :], np.broadcast_to([0.25, 0.25, 0.1, 0.4], (3, 3, 4)))
    np.testing.assert_allclose(Ob[2], [[1, 0, 0, 0], [0, 1, 0, 0], [0.25] * 4])
    # rewards: R(s, ja, s', jo) kept, R(s, ja) its expectation under T and O
    full = m.reward_full
    assert full is not None and full[0, 0].tolist() == [[5] * 4] * 3
    assert full[2, 4, 0].tolist() == [1, 2, 3, 4] and full[1, 5, 1, 3] == 10
    assert R[0, 0] == pytest.approx(5) and R[1, 0] == pytest.approx(-1)
    assert R[2, 3] == pytest.approx(0.2 * -1 + 0.3 * -1 + 0.5 * 2)
    assert R[2, 4] == pytest.approx(0.25 * (0.25 * 1 + 0.25 * 2 + 0.1 * 3 + 0.4 * 4) - 0.75)
    np.testing.assert_allclose(R[:, 5], [0.5 * 0.4 * 10, 1.0 * 0.4 * 10, 0.3 * 0.4 * 10])
    cost = parse(ALL_FORMS.replace("values: reward", "values: cost"))
    np.testing.assert_allclose(cost.reward, -R)


def _one_agent(start: str, states: str = "a b c") -> str:
    return (f"agents: 1\ndiscount: 1\nvalues: reward\nstates: {states}\n{start}\nactions:\n"
            "go stay\nobservations:\n1\nT: * :\nidentity\nO: * :\nuniform\nT: go : a : "
            "b : 1\nT: go : a : a : 0\n")


@pytest.mark.parametrize("start, want", [
    ("start:\nuniform", [1 / 3] * 3),
    ("start:\n0.2 0.3 0.5", [0.2, 0.3, 0.5]),
    ("start: 0.2 0.3 0.5", [0.2, 0.3, 0.5]),
    ("start: b", [0, 1, 0]),
    ("start: 2", [0, 0, 1]),
    ("start include: a 2", [0.5, 0, 0.5]),
    ("start exclude: b", [0.5, 0, 0.5]),
])
def test_start_forms_and_one_agent(start, want):
    m = parse(_one_agent(start))
    np.testing.assert_allclose(m.start, want)
    assert m.agents == ("agent_0",) and m.n_joint_actions == 2
    np.testing.assert_allclose(m.transition[0, 0], [0, 1, 0])  # a single action name


def test_three_agents_joint_indices():
    text = ("agents: x y z\ndiscount: 1\nvalues: reward\nstates: 2\nstart: 0\nactions:\n2\n"
            "3\n2\nobservations:\n2\n1\n2\nT: * :\nidentity\nT: 1 2 0 : 0 :\n0 1\nO: * :\n"
            "uniform\nO: * : * : 1 0 * : 0\nO: * : * : 0 0 * : 0.5\nR: 1 * 1 : 1 : * : * : 7\n")
    m = parse(text)
    assert m.n_joint_actions == 12 and m.n_joint_obs == 4
    ja = m.joint_action([1, 2, 0])
    assert ja == 1 * 6 + 2 * 2 + 0
    np.testing.assert_allclose(m.transition[0, ja], [0, 1])
    np.testing.assert_allclose(m.observation[0, 1], [0.5, 0.5, 0, 0])
    assert [m.joint_action([1, a, 1]) for a in range(3)] == [7, 9, 11]
    assert np.flatnonzero(m.reward[1]).tolist() == [7, 9, 11] and m.reward[1, 9] == 7


BAD = [
    ("discount: 1\nagents: 2\n", 1, "'agents:'"),
    ("agents: 1\ndiscount: 1\nvalues: reward\nstates: a\nstart: z\n", 5, "a state"),
    (_one_agent("start:\nuniform") + "T: jump : a : a : 1\n", 17, "an action of agent 0"),
    (_one_agent("start:\nuniform") + "T: go : a :\n0.5 0.5\n", 18, "3 numbers per row"),
    (_one_agent("start:\nuniform") + "T: go : a : c : 1.5\n", 17, "a probability in [0, 1]"),
    (_one_agent("start:\nuniform") + "T: * :\nO: * :\nuniform\n", 18, "on the line(s) after"),
    (_one_agent("start:\nuniform") + "X: 1\n", 17, "an entry 'T: ...'"),
    (_one_agent("start:\n0.5 0.6 0"), 6, "start probabilities that sum to 1"),
    (_one_agent("start:\nuniform") + "O: stay : * :\n0.5\n", 17, "O(. | ja=stay, s'=a) "
                                                                  "to sum to 1"),
]


@pytest.mark.parametrize("text, line, expected", BAD)
def test_parse_errors_are_one_line_naming_file_and_line(text, line, expected):
    with pytest.raises(DPOMDPParseError) as e:
        parse(text, source="bad.dpomdp")
    msg = str(e.value)
    assert msg.startswith(f"bad.dpomdp:{line}: expected ") and "\n" not in msg
    assert expected in msg
    assert isinstance(e.value, ConfigError)
    assert str(pickle.loads(pickle.dumps(e.value))) == msg


def test_a_row_of_t_not_summing_to_one_names_its_line(tmp_path):
    text = (PROBLEMS_DIR / "dectiger.dpomdp").read_text().replace(
        "identity \n", "identity \nT: listen listen : tiger-right : tiger-left : 0.1\n", 1)
    path = tmp_path / "broken.dpomdp"
    path.write_text(text)
    line = text.split("\n").index("T: listen listen : tiger-right : tiger-left : 0.1") + 1
    with pytest.raises(DPOMDPParseError) as e:
        load(path)
    assert str(e.value).startswith(f"{path}:{line}: expected the probabilities T(. | "
                                   "s=tiger-right, ja=listen listen) to sum to 1, got 1.1")
    with pytest.raises(DPOMDPParseError, match="no T entry sets them"):
        parse(_one_agent("start:\nuniform").replace("T: * :\nidentity\n", ""))


# ---------------------------------------------------------------------- exact values
def _opposite_door(h):
    """Listen first, then open the door opposite the side last heard."""
    return LISTEN if not h else (OPEN_RIGHT if h[-1] == HEAR_LEFT else OPEN_LEFT)


def test_exact_values_worked_out_by_hand(tiger):
    listen = [lambda h: LISTEN] * 2
    assert policy_value(tiger, listen, 3) == pytest.approx(-6.0)
    assert policy_value(tiger, listen, 4) == pytest.approx(-8.0)
    # both hear left 0.7225 (+20), both right 0.0225 (-50), else -100: -2 - 12.175
    assert policy_value(tiger, [_opposite_door] * 2, 2) == pytest.approx(-14.175)
    mean, se = monte_carlo_value(tiger, [_opposite_door] * 2, 2, episodes=20_000, seed=0)
    assert abs(mean + 14.175) < 4 * se and 0 < se < 1


def test_brute_force_optimum_matches_the_published_values(tiger):
    v, pol = brute_force_optimum(tiger, 2)
    assert v == pytest.approx(REFERENCE["dectiger"][2]["optimum"]) == pytest.approx(-4.0)
    assert policy_value(tiger, pol, 2) == pytest.approx(v)
    broadcast = load(PROBLEMS_DIR / "broadcastChannel.dpomdp")
    v3, _ = brute_force_optimum(broadcast, 3)
    assert v3 == pytest.approx(reference("broadcastChannel", 3)["optimum"])
    # Dec-Tiger h = 3 (3^7 policy trees of agent 0, ~3 s): MADP's 5.1908125
    v3, pol3 = brute_force_optimum(tiger, 3)
    assert v3 == pytest.approx(5.1908125, abs=1e-9) and REFERENCE["dectiger"][3]["optimum"] \
        == pytest.approx(v3, abs=1e-9)
    assert policy_value(tiger, pol3, 3) == pytest.approx(v3)
    with pytest.raises(ValueError, match="max_policies"):
        brute_force_optimum(tiger, 4)
    # GridSmall (rewards on reaching a cell: the realised R(s, ja, s', jo)) by sampling too
    grid = load(PROBLEMS_DIR / "GridSmall.dpomdp")
    v2, pol2 = brute_force_optimum(grid, 2)
    assert v2 == pytest.approx(reference("GridSmall", 2)["optimum"])
    mean, se = monte_carlo_value(grid, pol2, 2, episodes=8192, seed=1)
    assert abs(mean - v2) < 4 * se


@pytest.mark.parametrize("problem, horizons", [("dectiger", [3, 4]), ("recycling", [2, 5]),
                                               ("GridSmall", [3]), ("broadcastChannel", [4])])
def test_reference_open_loop_and_random_values_recomputed(problem, horizons):
    m = load(PROBLEMS_DIR / PROBLEMS[problem])
    for h in horizons:
        ref = reference(problem.upper(), h)
        assert open_loop_value(m, h) == pytest.approx(ref["open_loop"], abs=1e-9)
        assert random_value(m, h) == pytest.approx(ref["random"], abs=1e-9)
        assert ref["random"] < ref["open_loop"] <= ref["optimum"] + 1e-9
    value, plan = open_loop_value(m, horizons[0], return_plan=True)
    fixed = [lambda hist, i=i: plan[len(hist)][i] for i in range(m.n_agents)]
    assert policy_value(m, fixed, horizons[0]) == pytest.approx(value)


def test_random_value_matches_monte_carlo():
    m = load(PROBLEMS_DIR / "recycling.dpomdp")
    c = DPOMDPCore(DPOMDPEnvConfig(problem="recycling", horizon=4), num_envs=20_000, seed=4)
    rng = np.random.default_rng(1)
    total = np.zeros(c.num_envs)
    for _ in range(4):
        total += c.step(rng.integers(0, 3, (c.num_envs, 2))).reward[:, 0]
    se = total.std() / math.sqrt(len(total))
    assert abs(total.mean() - random_value(m, 4)) < 4 * se


def test_policy_from_actor_reads_the_env_observations(tiger):
    calls = []

    def actor(agent, obs, prev):
        calls.append((agent, obs.shape, prev.shape))
        last = obs[:, -1, :3].argmax(1)  # the one-hot of the last observation (2 = none)
        return np.where(last == 2, LISTEN, np.where(last == HEAR_LEFT, OPEN_RIGHT, OPEN_LEFT))

    pol = policy_from_actor(tiger, 3, actor)
    assert calls[:3] == [(0, (1, 1, 6), (1, 0)), (0, (2, 2, 6), (2, 1)),
                         (0, (4, 3, 6), (4, 2))]
    assert pol[0][()] == LISTEN and pol[1][(HEAR_LEFT,)] == OPEN_RIGHT
    assert policy_value(tiger, pol, 2) == pytest.approx(-14.175)
    with pytest.raises(ValueError, match="chose 7"):
        policy_from_actor(tiger, 2, lambda agent, obs, prev: np.full(len(obs), 7))


@pytest.mark.parametrize("rnn", [False, True])
def test_a_learners_greedy_policy_is_tabulated_exactly(rnn):
    """The history -> action tables built through actor_from_policy are the actions the
    runner's greedy acting takes (same previous-action and hidden-state conventions)."""
    import torch

    from marl.build import build, compose_config

    h = 3
    cfg = compose_config(["env=dpomdp", f"env.horizon={h}", f"algo.rnn={str(rnn).lower()}"])
    env, learner, _ = build(cfg, 64, seed=0)
    pol = learner.policy
    torch.manual_seed(1)
    with torch.no_grad():  # random weights: actions that depend on the history
        for p in pol.actor.parameters():
            p.normal_(0.0, 1.0)
    m, b, n, a = env.model, env.num_envs, 2, env.spec.n_actions
    tables = policy_from_actor(m, h, actor_from_policy(pol, n, a))
    assert len(set(tables[0].values())) > 1 and len(set(tables[1].values())) > 1
    env.reset(seed=1)
    hist = [[()] * n for _ in range(b)]
    prev = torch.full((b, n), a, dtype=torch.long)
    hid = torch.zeros(b, n, pol.hidden_dim)
    mask = torch.from_numpy(env.buf.action_mask)
    for t in range(h):
        with torch.inference_mode():
            acts, hid = pol.act(torch.from_numpy(env.buf.obs), prev,
                                torch.full((b,), t == 0), mask, hid, greedy=True)
        want = [[tables[i][hist[e][i]] for i in range(n)] for e in range(b)]
        assert acts.tolist() == want
        env.step(acts.numpy())
        seen = env.observation_indices()
        hist = [[hist[e][i] + (int(seen[e, i]),) for i in range(n)] for e in range(b)]
        prev = acts.clone()
    assert math.isfinite(policy_value(m, tables, h))


def test_score_against_the_references():
    s = score("DecTiger", 3, -6.0)
    assert s["optimum"] == pytest.approx(5.1908125) and s["open_loop"] == -6.0
    assert s["normalised"] == pytest.approx((-6 + 138.66666666666666) / (5.1908125 + 138.666667),
                                            rel=1e-6)
    assert reference("dectiger", 4)["optimum"] == pytest.approx(4.8028, abs=1e-4)
    with pytest.raises(KeyError, match="horizons 2..5"):
        reference("dectiger", 9)


def test_shipped_files_carry_their_license():
    notice = (PROBLEMS_DIR / "NOTICE").read_text()
    assert "GNU General Public License, version 3" in notice and "MADPToolbox/MADP" in notice
    assert "GNU GENERAL PUBLIC LICENSE" in (PROBLEMS_DIR / "LICENSE").read_text()
    for name, file in PROBLEMS.items():
        assert (PROBLEMS_DIR / file).is_file(), name
