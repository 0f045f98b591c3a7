"""The coordination diagnosis's maths (marl.analysis.coordination) against hand-worked
cases: episode masks and fractions, the strict box's joint pushes read from the env's
own states, a known Q table, and Dec-Tiger's beliefs and plan."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from marl.analysis.coordination import (
    advantage_of,
    advantage_split,
    beliefs,
    box_situation,
    deviation_split,
    dpomdp_situation,
    entropy,
    episode_fraction,
    episode_return,
    first_episode,
    joint_index,
    joint_q,
    plan_and_safe,
    push_directions,
    return_split,
)
from marl.envs.boxpush import BoxPushConfig, BoxPushCore
from marl.envs.dpomdp.config import resolve_problem
from marl.envs.dpomdp.parser import load_cached

UP, DOWN, LEFT, RIGHT, STAY = 1, 2, 3, 4, 0


def test_first_episode_stops_after_the_first_end():
    first = torch.tensor([[True, True], [False, False], [False, True], [False, False]])
    ended = torch.tensor([[False, False], [True, True], [False, False], [False, False]])
    m = first_episode(first, ended)
    assert m.tolist() == [[True, True], [True, True], [False, False], [False, False]]


def test_episode_fraction_counts_episodes_not_steps():
    mask = torch.tensor([[True, True, True], [True, True, False], [False, True, False]])
    event = torch.tensor([[True, False, False], [True, False, False], [False, False, True]])
    # env 0: two events in one episode (1); env 1: none (0); env 2: outside its episode
    assert episode_fraction(event, mask) == pytest.approx(1 / 3)


def test_episode_return_sums_the_masked_steps():
    rewards = torch.tensor([[[1.0, 3.0], [0.0, 0.0]], [[2.0, 2.0], [5.0, 5.0]]])  # [2, 2, 2]
    mask = torch.tensor([[True, True], [True, False]])
    assert episode_return(rewards, mask) == pytest.approx((2.0 + 2.0 + 0.0) / 2)


def _step_states(robots, box, actions):
    """(state before, state after, actions) of one step of the strict box per case."""
    core = BoxPushCore(BoxPushConfig(box_weight=2, solo_push_prob=0.0), num_envs=len(box),
                       seed=0, autoreset=False)
    core.set_positions(np.array(robots), np.array(box), np.array([[2, 0]] * len(box)))
    before = torch.tensor(core.buf.state.copy())
    core.step(np.array(actions))
    after = torch.tensor(core.buf.state.copy())
    return before[None], after[None], torch.tensor(actions)[None]


def test_box_reading_follows_the_env_rules():
    robots = [[[1, 2], [1, 2]], [[1, 2], [1, 2]], [[1, 2], [2, 3]], [[2, 3], [2, 3]]]
    box = [[2, 2], [2, 2], [2, 2], [2, 2]]
    actions = [[RIGHT, RIGHT], [RIGHT, STAY], [RIGHT, UP], [UP, UP]]
    s, s2, a = _step_states(robots, box, actions)
    r = box_situation(s, s2, a, 5, 5)
    # same cell next to the box: cases 0, 1 (push right) and 3 (push up)
    assert r["where"][0].tolist() == [True, True, False, True]
    assert r["plan"][0].tolist() == [[RIGHT, RIGHT], [RIGHT, RIGHT], [STAY, STAY], [UP, UP]]
    assert r["plan_taken"][0].tolist() == [True, False, False, True]
    # the strict box moves only under the joint push (the env's own step says so)
    assert r["progress"][0].tolist() == [True, False, False, True]
    assert r["safe"].eq(STAY).all()


def test_push_directions_from_each_side():
    robots = torch.tensor([[[2, 1], [3, 2]], [[0, 0], [2, 3]]])
    box = torch.tensor([[2, 2], [2, 2]])
    assert push_directions(robots, box).tolist() == [[DOWN, LEFT], [STAY, UP]]


Q = torch.tensor([[11.0, -30.0, 0.0], [-30.0, 7.0, 6.0], [0.0, 0.0, 5.0]])
"""The climbing game: Q(u0, u1); the plan (0, 0) pays 11, the safe (2, 2) 5."""


def coma_rows(joint):
    """A perfect COMA critic's output ``[..., 2, 3]`` at joint action ``joint``: row 0
    is Q(., u1), row 1 Q(u0, .)."""
    return torch.stack([Q[:, joint[..., 1]].movedim(0, -1), Q[joint[..., 0]]], -2)


def test_joint_q_reads_each_row_at_its_own_action():
    for u in ([0, 0], [2, 2], [0, 1]):
        joint = torch.tensor(u)
        assert float(joint_q(coma_rows(joint), joint)) == Q[u[0], u[1]]


def test_counterfactual_advantage_of_the_plan_by_partner():
    pi = torch.full((2, 3), 1 / 3)
    # partner plays the plan: A = Q(0, 0) - mean_u Q(u, 0) = 11 - (11 - 30 + 0) / 3
    adv = advantage_of(coma_rows(torch.tensor([0, 0])), pi, torch.tensor([0, 0]))
    assert adv.tolist() == pytest.approx([11 + 19 / 3] * 2)
    # partner plays safe (2): agent 0, A = Q(0, 2) - mean_u Q(u, 2) = 0 - 11 / 3;
    # agent 1, A = Q(2, 0) - mean_u Q(2, u) = 0 - 5 / 3
    adv = advantage_of(coma_rows(torch.tensor([2, 2])), pi, torch.tensor([0, 0]))
    assert adv.tolist() == pytest.approx([-11 / 3, -5 / 3])


def test_advantage_split_by_partner_action():
    adv = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]])  # [T=1, B=3, 2]
    actions = torch.tensor([[[0, 0], [0, 2], [1, 1]]])
    plan = torch.zeros(1, 3, 2, dtype=torch.long)
    safe = torch.full((1, 3, 2), 2)
    where = torch.tensor([[True, True, False]])
    s = advantage_split(adv, actions, plan, safe, where)
    assert s["partner_plan"] == {"mean": pytest.approx(7 / 3), "n": 3}  # 1, 2 and 4
    assert s["partner_not_plan"] == {"mean": pytest.approx(3.0), "n": 1}
    assert s["partner_safe"] == {"mean": pytest.approx(3.0), "n": 1}
    taken = advantage_split(adv, actions, plan, safe, where, taken_only=True)
    assert taken["partner_plan"]["n"] == 2 and taken["partner_safe"]["n"] == 1


def test_deviation_split_counts_who_left_the_safe_action():
    adv = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]])
    actions = torch.tensor([[[0, 2], [1, 1], [2, 2]]])  # safe is 2
    safe = torch.full((1, 3, 2), 2)
    s = deviation_split(adv, actions, safe, torch.tensor([[True, True, False]]))
    assert s["partner_safe"] == {"mean": pytest.approx(1.0), "n": 1}  # env 0, agent 0
    assert s["partner_not_safe"] == {"mean": pytest.approx(3.5), "n": 2}  # env 1


def test_return_split_by_what_the_team_played():
    g = torch.tensor([[[1.0, 3.0], [4.0, 4.0], [0.0, 2.0], [9.0, 9.0]]])  # [T=1, B=4, 2]
    actions = torch.tensor([[[0, 0], [2, 2], [0, 2], [0, 0]]])
    plan, safe = torch.zeros(1, 4, 2, dtype=torch.long), torch.full((1, 4, 2), 2)
    s = return_split(g, actions, plan, safe, torch.tensor([[True, True, True, False]]))
    assert s == {"plan": {"mean": 2.0, "n": 1}, "safe": {"mean": 4.0, "n": 1},
                 "other": {"mean": 1.0, "n": 1}}


def test_entropy_of_uniform_and_sure():
    p = torch.tensor([[[0.2] * 5, [1.0, 0, 0, 0, 0]]])
    assert entropy(p, torch.tensor([[True, False]])) == pytest.approx(math.log(5))
    assert entropy(p, torch.tensor([[False, True]])) == pytest.approx(0.0, abs=1e-6)


@pytest.fixture(scope="module")
def tiger():
    return load_cached(resolve_problem("dectiger")[1])


def test_dectiger_plan_and_safe(tiger):
    plans, safe = plan_and_safe(torch.tensor(tiger.reward), tiger.n_actions)
    names = tiger.actions[0]
    assert [[names[a] for a in p] for p in plans.tolist()] == [
        ["open-right", "open-right"], ["open-left", "open-left"]]  # tiger-left, tiger-right
    assert [names[a] for a in safe.tolist()] == ["listen", "listen"]


def test_dectiger_beliefs_and_where(tiger):
    listen, hear_left = 0, 0
    ja = joint_index(torch.tensor([[[listen, listen]]] * 3), tiger.n_actions)  # [T=3, B=1]
    jo = joint_index(torch.tensor([[[hear_left, hear_left]]] * 3), tiger.n_obs)
    b = beliefs(torch.tensor(tiger.start), torch.tensor(tiger.transition),
                torch.tensor(tiger.observation), ja, jo)
    p1 = 0.7225 / (0.7225 + 0.0225)  # one joint step of both hearing left
    p2 = 0.7225 ** 2 / (0.7225 ** 2 + 0.0225 ** 2)
    assert b[:, 0, 0].tolist() == pytest.approx([0.5, p1, p2])
    sit = dpomdp_situation(torch.zeros(3, 1, dtype=torch.long), b,
                           torch.zeros(3, 1, 2, dtype=torch.long),
                           torch.tensor(tiger.reward), tiger.n_actions)
    # opening the right door at belief p pays 20 p - 50 (1 - p); listening pays -2
    assert sit["r_plan"][:, 0].tolist() == pytest.approx(
        [20 * p - 50 * (1 - p) for p in (0.5, p1, p2)], rel=1e-5)
    assert sit["where"][:, 0].tolist() == [False, True, True]
    assert not sit["plan_taken"].any() and not sit["progress"].any()
