"""Tests of the k-armed Gaussian bandit: batched core, PettingZoo facade, config."""

import warnings

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

from marl.envs import ENV_CONFIGS, make_vec_env
from marl.envs.bandit import EPISODE_METRICS, BanditCore, BanditEnv, BanditEnvConfig, parallel_env
from marl.envs.base import VecEnv

UNIQUE = [0.2, 0.5, 1.0, 0.4]


def pulls(core, arms):
    return core.step(np.asarray(arms, np.int64).reshape(-1, 1))


# ---------------------------------------------------------------------- PettingZoo API
@pytest.mark.parametrize("kwargs", [{}, {"means": UNIQUE, "std": 0.5}, {"std": 0.0}])
def test_pettingzoo_parallel_api(kwargs):
    env = BanditEnv(**kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parallel_api_test(env, num_cycles=10)
    assert not [str(w.message) for w in caught if "agent" in str(w.message).lower()]
    parallel_seed_test(lambda: BanditEnv(**kwargs))


def test_facade_episode_and_infos():
    env = parallel_env(means=UNIQUE, std=0.0)
    assert env.possible_agents == ["player_0"] and env.agents == []
    assert env.action_space("player_0").n == 4
    obs, infos = env.reset(seed=1)
    assert env.agents == ["player_0"]
    assert env.observation_space("player_0").contains(obs["player_0"])
    assert infos == {"player_0": {}}
    assert env.state_space.contains(env.state())
    obs, rew, term, trunc, infos = env.step({"player_0": 1})
    assert rew == {"player_0": pytest.approx(0.5)}
    assert term == {"player_0": True} and trunc == {"player_0": False}
    assert infos["player_0"] == {"regret": pytest.approx(0.5), "optimal": 0.0}
    assert env.agents == []
    with pytest.raises(RuntimeError, match="reset"):
        env.step({"player_0": 2})
    env.reset()
    *_, infos = env.step({"player_0": np.int64(2)})
    assert infos["player_0"] == {"regret": 0.0, "optimal": 1.0}


@pytest.mark.parametrize("bad", [4, -1, 1.0, "0", None, True])
def test_facade_invalid_action(bad):
    env = BanditEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="player_0"):
        env.step({"player_0": bad})
    with pytest.raises(ValueError, match="robot_0"):
        env.step({"robot_0": 0})
    with pytest.raises(ValueError, match="player_0"):
        env.step({})


# ---------------------------------------------------------------------- batched core
def test_spec_and_registry():
    core = make_vec_env(BanditEnvConfig(means=UNIQUE), num_envs=5, seed=0)
    assert isinstance(core, BanditCore) and isinstance(core, VecEnv)
    assert ENV_CONFIGS["bandit"] is BanditEnvConfig
    s = core.spec
    assert s.agents == ("player_0",) and s.n_agents == 1
    assert (s.obs_shape, s.state_dim, s.n_actions) == ((1,), 1, 4)
    assert s.episode_metrics == EPISODE_METRICS == ("regret", "optimal")
    assert s.success_metric == "optimal"
    buf = core.buf
    assert buf.obs.shape == (5, 1, 1) and buf.state.shape == (5, 1)
    assert buf.reward.shape == (5, 1) and buf.action_mask.shape == (5, 1, 4)
    assert (buf.obs == 1.0).all() and (buf.state == 1.0).all()


def test_reward_mean_and_std_per_arm():
    means, std, per_arm = [1.0, 0.9, -0.3, 2.0], 1.5, 25_000
    core = BanditCore(BanditEnvConfig(means=means, std=std), num_envs=4 * per_arm, seed=0)
    arms = np.repeat(np.arange(4), per_arm)
    r = pulls(core, arms).reward[:, 0].astype(np.float64)
    for a, m in enumerate(means):
        ra = r[arms == a]
        # standard error of the mean is 1.5 / sqrt(25000) ~ 0.0095: 5 sigma bounds
        assert abs(ra.mean() - m) < 0.05, (a, ra.mean())
        assert abs(ra.std() - std) < 0.05, (a, ra.std())
    noise = r - np.asarray(means)[arms]
    assert abs(np.corrcoef(noise[:-1], noise[1:])[0, 1]) < 0.02  # independent draws


def test_zero_std_is_exact():
    core = BanditCore(BanditEnvConfig(means=UNIQUE, std=0.0), num_envs=8, seed=0)
    arms = np.arange(8) % 4
    np.testing.assert_array_equal(pulls(core, arms).reward[:, 0], np.float32(UNIQUE)[arms])


def test_regret_and_optimal_with_ties():
    core = BanditCore(BanditEnvConfig(), num_envs=4, seed=0)  # means 1, .9, .9, 1
    buf = pulls(core, [0, 1, 2, 3])
    np.testing.assert_allclose(buf.episode["regret"], [0.0, 0.1, 0.1, 0.0], atol=1e-6)
    np.testing.assert_array_equal(buf.episode["optimal"], [1.0, 0.0, 0.0, 1.0])
    core = BanditCore(BanditEnvConfig(means=UNIQUE), num_envs=4, seed=0)
    buf = pulls(core, [3, 2, 1, 0])
    np.testing.assert_allclose(buf.episode["regret"], [0.6, 0.0, 0.5, 0.8], atol=1e-6)
    np.testing.assert_array_equal(buf.episode["optimal"], [0.0, 1.0, 0.0, 0.0])


def test_every_step_terminates_and_autoresets():
    core = BanditCore(BanditEnvConfig(means=UNIQUE), num_envs=16, seed=3)
    buf = core.buf
    assert not buf.terminated.any() and not buf.truncated.any()
    rng = np.random.default_rng(0)
    rewards = []
    for _ in range(5):
        arms = rng.integers(0, 4, 16)
        out = pulls(core, arms)
        assert out is buf  # buffers are reused, never reallocated
        assert buf.terminated.all() and not buf.truncated.any() and buf.alive.all()
        # ended episodes: final obs/state are the constant, and so is the next episode's
        assert (buf.final_obs == 1.0).all() and (buf.final_state == 1.0).all()
        assert (buf.obs == 1.0).all() and (buf.state == 1.0).all()
        np.testing.assert_allclose(buf.episode["regret"], 1.0 - np.float32(UNIQUE)[arms], atol=1e-6)
        rewards.append(buf.reward.copy())
    assert not np.array_equal(rewards[0], rewards[1])


def test_no_autoreset_core_and_seeding():
    core = BanditCore(BanditEnvConfig(), num_envs=3, seed=0, autoreset=False)
    pulls(core, [0, 1, 2])
    assert not core.buf.alive.any()
    with pytest.raises(RuntimeError, match="reset"):
        pulls(core, [0, 1, 2])
    core.reset()
    assert core.buf.alive.all() and not core.buf.terminated.any()
    a = BanditCore(BanditEnvConfig(), num_envs=64, seed=7)
    b = BanditCore(BanditEnvConfig(), num_envs=64, seed=7)
    arms = np.arange(64) % 4
    r1 = pulls(a, arms).reward.copy()
    np.testing.assert_array_equal(r1, pulls(b, arms).reward)
    a.reset(seed=7)
    np.testing.assert_array_equal(r1, pulls(a, arms).reward)


@pytest.mark.parametrize("bad", [4, -1, 100])
def test_invalid_batch_action(bad):
    core = BanditCore(BanditEnvConfig(), num_envs=3, seed=0)
    with pytest.raises(ValueError, match=rf"invalid action {bad} for agent 'player_0'"):
        pulls(core, [0, bad, 1])
    with pytest.raises(ValueError, match="shape"):
        core.step(np.zeros((3, 2), np.int64))
    with pytest.raises(ValueError, match="integers"):
        core.step(np.zeros((3, 1), np.float32))


@pytest.mark.parametrize(
    "field, value",
    [
        ("means", [1.0]),
        ("means", []),
        ("means", [1.0, float("nan")]),
        ("means", [1.0, "a"]),
        ("means", 3.0),
        ("std", -0.1),
        ("std", float("inf")),
        ("std", "1"),
        ("name", "cartpole"),
    ],
)
def test_bad_config(field, value):
    with pytest.raises(ValueError, match=rf"env\.{field} = .* is invalid"):
        BanditEnvConfig(**{field: value})


def test_config_from_mapping():
    core = make_vec_env(BanditEnvConfig(), 2)
    assert core.spec.n_actions == 4
    core = BanditCore({"name": "bandit", "means": (0, 1), "std": 0}, num_envs=2)
    assert core.cfg.means == [0.0, 1.0] and core.spec.n_actions == 2
    with pytest.raises(TypeError, match="unknown"):
        BanditCore({"means": [0, 1], "arms": 2})


# ---------------------------------------------------------------------- exact resume
def test_get_state_set_state_continues_exactly():
    """Save mid-run, step the original and a restored copy with the same actions: same
    rewards, flags and episode stats (the saved state is a copy and survives pickling)."""
    import pickle

    cfg = BanditEnvConfig(means=UNIQUE, std=1.0)
    env = BanditCore(cfg, num_envs=32, seed=3)
    rng = np.random.default_rng(0)
    for _ in range(5):
        pulls(env, rng.integers(0, 4, 32))
    saved = pickle.loads(pickle.dumps(env.get_state()))
    copy = BanditCore(cfg, num_envs=32, seed=99)  # another seed: every draw would differ
    copy.set_state(saved)
    for key in ("obs", "state", "action_mask", "alive"):
        np.testing.assert_array_equal(getattr(copy.buf, key), getattr(env.buf, key))
    for _ in range(10):
        arms = rng.integers(0, 4, 32)
        a, b = pulls(env, arms), pulls(copy, arms)
        for key in ("reward", "terminated", "truncated", "obs", "state", "alive"):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
        for k in EPISODE_METRICS:
            np.testing.assert_array_equal(a.episode[k], b.episode[k])


def test_set_state_refuses_another_env():
    env = BanditCore(BanditEnvConfig(), num_envs=4, seed=0)
    with pytest.raises(ValueError, match="num_envs=4"):
        BanditCore(BanditEnvConfig(), num_envs=5).set_state(env.get_state())
    with pytest.raises(ValueError, match="means"):
        BanditCore(BanditEnvConfig(means=UNIQUE), num_envs=4).set_state(env.get_state())
    ended = BanditCore(BanditEnvConfig(), num_envs=2, seed=0, autoreset=False)
    other = BanditCore(BanditEnvConfig(), num_envs=2, seed=0, autoreset=False)
    pulls(ended, [0, 1])
    other.set_state(ended.get_state())
    assert not other.buf.alive.any()
    with pytest.raises(RuntimeError, match="reset"):  # the ended flag came along
        pulls(other, [0, 1])
