"""Tests of the one-step cooperative matrix games (climbing, penalty)."""

import itertools
import pickle

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

from marl.envs import ENV_CONFIGS, make_vec_env
from marl.envs.base import VecEnv
from marl.envs.matrix import (
    AGENTS,
    CLIMBING_PAYOFF,
    ClimbingEnvConfig,
    MatrixGameCore,
    MatrixGameEnv,
    PenaltyEnvConfig,
    climbing_parallel_env,
    penalty_parallel_env,
)

CLIMBING = [[11, -30, 0], [-30, 7, 0], [0, 6, 5]]


def penalty(k):
    return [[-k, 0, 10], [0, 2, 0], [10, 0, -k]]


JOINT = list(itertools.product(range(3), range(3)))  # all 9 joint actions, row-major


def all_joint_actions():
    return np.array(JOINT, dtype=np.int64)  # [9, 2]: env b plays JOINT[b]


# ---------------------------------------------------------------------- payoffs
@pytest.mark.parametrize(
    ("cfg", "table", "optimal"),
    [
        (ClimbingEnvConfig(), CLIMBING, {(0, 0)}),
        (PenaltyEnvConfig(), penalty(100), {(0, 2), (2, 0)}),
        (PenaltyEnvConfig(k=7.5), penalty(7.5), {(0, 2), (2, 0)}),
        (PenaltyEnvConfig(k=0), penalty(0), {(0, 2), (2, 0)}),
    ],
    ids=["climbing", "penalty100", "penalty7.5", "penalty0"],
)
def test_payoffs_termination_and_metrics_for_all_joint_actions(cfg, table, optimal):
    env = make_vec_env(cfg, 9, seed=0)
    assert isinstance(env, VecEnv)
    assert env.spec.agents == AGENTS == ("player_0", "player_1")
    assert env.spec.n_actions == 3
    assert env.spec.episode_metrics == ("optimal", "joint_action")
    assert env.spec.success_metric == "optimal"
    buf = env.step(all_joint_actions())
    for b, (a0, a1) in enumerate(JOINT):
        assert buf.reward[b].tolist() == [table[a0][a1]] * 2, (a0, a1)
        assert buf.episode["joint_action"][b] == a0 * 3 + a1
        assert buf.episode["optimal"][b] == float((a0, a1) in optimal), (a0, a1)
    assert buf.terminated.all() and not buf.truncated.any()
    # Auto-reset: a new one-step episode starts with the same constant observation.
    np.testing.assert_array_equal(buf.final_obs, np.ones((9, 2, 1), np.float32))
    np.testing.assert_array_equal(buf.final_state, np.ones((9, 1), np.float32))
    np.testing.assert_array_equal(buf.obs, np.ones((9, 2, 1), np.float32))
    np.testing.assert_array_equal(buf.state, np.ones((9, 1), np.float32))
    assert buf.alive.all()
    buf = env.step(np.zeros((9, 2), np.int64))
    assert buf.terminated.all()
    assert (buf.reward == table[0][0]).all()
    assert (buf.episode["joint_action"] == 0).all()


def test_registry_and_config_validation():
    assert ENV_CONFIGS["climbing"] is ClimbingEnvConfig
    assert ENV_CONFIGS["penalty"] is PenaltyEnvConfig
    for bad in (-1, -0.5, float("nan"), float("inf"), "10", True):
        with pytest.raises(ValueError, match=r"env\.k = .* is invalid: must be a finite number"):
            PenaltyEnvConfig(k=bad)
    # Plain mappings (e.g. a DictConfig) select the game by name.
    env = make_vec_env_from_mapping({"name": "penalty", "k": 3.0})
    buf = env.step(np.array([[0, 0]]))
    assert buf.reward[0, 0] == -3.0
    with pytest.raises(TypeError, match="unknown PenaltyEnvConfig field"):
        make_vec_env_from_mapping({"name": "penalty", "kk": 3.0})


def make_vec_env_from_mapping(d):
    from marl.envs.matrix import make_matrix_vec_env

    return make_matrix_vec_env(d, 1, 0)


def test_invalid_actions_raise():
    env = MatrixGameCore(CLIMBING_PAYOFF, num_envs=2)
    with pytest.raises(ValueError, match="invalid action 3 for agent 'player_1'"):
        env.step(np.array([[0, 0], [0, 3]]))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros((3, 2), np.int64))


def test_core_without_autoreset_ends():
    env = MatrixGameCore(CLIMBING_PAYOFF, num_envs=2, autoreset=False)
    buf = env.step(np.array([[2, 2], [1, 1]]))
    assert buf.reward.tolist() == [[5, 5], [7, 7]]
    assert not buf.alive.any()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros((2, 2), np.int64))
    env.reset()
    assert env.buf.alive.all()
    assert env.optimal_joint_actions == [(0, 0)]


# ---------------------------------------------------------------------- exact resume
BUF_FIELDS = ("obs", "state", "reward", "terminated", "truncated", "final_obs", "final_state",
              "action_mask", "alive")


def assert_same_buffers(a, b):
    for name in BUF_FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for k in a.episode:
        np.testing.assert_array_equal(a.episode[k], b.episode[k], err_msg=k)


@pytest.mark.parametrize("cfg", [ClimbingEnvConfig(), PenaltyEnvConfig(k=7.0)],
                         ids=["climbing", "penalty"])
def test_get_state_set_state_continue_identically(cfg):
    env = make_vec_env(cfg, 9, seed=0)
    assert hasattr(env, "get_state") and hasattr(env, "set_state")  # ResumableVecEnv
    env.step(all_joint_actions())
    saved = env.get_state()
    copy = make_vec_env(cfg, 9, seed=5)
    copy.set_state(pickle.loads(pickle.dumps(saved)))  # survives a checkpoint round trip
    assert_same_buffers(env.buf, copy.buf)
    rng = np.random.default_rng(0)
    for _ in range(5):
        acts = rng.integers(0, 3, (9, 2))
        assert_same_buffers(env.step(acts), copy.step(acts))
    # Without auto-reset, "the episodes have ended" is part of the state.
    ended = MatrixGameCore(CLIMBING_PAYOFF, num_envs=2, autoreset=False)
    ended.step(np.zeros((2, 2), np.int64))
    fresh = MatrixGameCore(CLIMBING_PAYOFF, num_envs=2, autoreset=False)
    fresh.set_state(ended.get_state())
    assert not fresh.buf.alive.any()
    with pytest.raises(RuntimeError, match="reset"):
        fresh.step(np.zeros((2, 2), np.int64))


def test_set_state_rejects_another_game_or_batch():
    saved = MatrixGameCore(CLIMBING_PAYOFF, num_envs=2).get_state()
    with pytest.raises(ValueError, match=r"saved matrix-game state is for num_envs=2"):
        MatrixGameCore(CLIMBING_PAYOFF, num_envs=3).set_state(saved)
    with pytest.raises(ValueError, match=r"payoff"):
        MatrixGameCore(penalty(100), num_envs=2).set_state(saved)


# ---------------------------------------------------------------------- PettingZoo facade
@pytest.mark.parametrize("factory", [climbing_parallel_env, penalty_parallel_env])
def test_pettingzoo_api_and_seed_tests(factory):
    parallel_api_test(factory(), num_cycles=10)
    parallel_seed_test(factory)


@pytest.mark.parametrize(
    ("env", "table"),
    [(climbing_parallel_env(), CLIMBING), (penalty_parallel_env(k=50), penalty(50))],
)
def test_parallel_env_payoffs_and_termination(env, table):
    assert isinstance(env, MatrixGameEnv)
    for a0, a1 in JOINT:
        obs, infos = env.reset(seed=0)
        assert env.agents == ["player_0", "player_1"]
        assert obs["player_0"].tolist() == [1.0] and env.state().tolist() == [1.0]
        obs, rew, term, trunc, infos = env.step({"player_0": a0, "player_1": np.int64(a1)})
        assert rew == {"player_0": table[a0][a1], "player_1": table[a0][a1]}
        assert term == {"player_0": True, "player_1": True}
        assert trunc == {"player_0": False, "player_1": False}
        assert infos["player_0"]["joint_action"] == a0 * 3 + a1
        assert env.agents == []
        with pytest.raises(RuntimeError, match="reset"):
            env.step({"player_0": 0, "player_1": 0})


def test_parallel_env_rejects_bad_actions():
    env = penalty_parallel_env()
    env.reset()
    with pytest.raises(ValueError, match="no action given"):
        env.step({"player_0": 0})
    with pytest.raises(ValueError, match="invalid action 5"):
        env.step({"player_0": 0, "player_1": 5})
    with pytest.raises(ValueError, match="k = -1"):
        penalty_parallel_env(k=-1)
