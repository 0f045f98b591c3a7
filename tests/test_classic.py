"""Tests of the gymnasium adapters and CartPole: VecEnv semantics, PettingZoo facade."""

import math
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from pettingzoo.test import parallel_api_test, parallel_seed_test

from marl.envs import ENV_CONFIGS, make_vec_env
from marl.envs.base import VecEnv
from marl.envs.classic import (
    CartPoleEnvConfig,
    CartPoleSameStepVectorEnv,
    GymnasiumParallelEnv,
    GymnasiumVecEnv,
    make_gymnasium_vec,
    parallel_env,
)

X_LIMIT, THETA_LIMIT = 2.4, 12 * 2 * math.pi / 360


def fell(obs: np.ndarray) -> np.ndarray:
    """CartPole's termination rule on observations [..., 4]."""
    return (np.abs(obs[..., 0]) > X_LIMIT) | (np.abs(obs[..., 2]) > THETA_LIMIT)


# ---------------------------------------------------------------------- PettingZoo facade
@pytest.mark.parametrize(
    "make",
    [
        lambda: parallel_env(),
        lambda: parallel_env(max_steps=20),
        lambda: GymnasiumParallelEnv(gymnasium.make("Acrobot-v1", max_episode_steps=50)),
    ],
    ids=["cartpole", "cartpole_20", "acrobot"],
)
def test_pettingzoo_parallel_api(make):
    env = make()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parallel_api_test(env, num_cycles=600)
    assert not [str(w.message) for w in caught if "agent" in str(w.message).lower()]
    parallel_seed_test(make)


def test_facade_matches_gymnasium_and_state_is_obs():
    env = parallel_env(max_steps=30)
    ref = gymnasium.make("CartPole-v1", max_episode_steps=30)
    assert env.possible_agents == ["player_0"]
    assert env.action_space("player_0").n == 2
    assert env.state_space is env.observation_space("player_0")
    rng = np.random.default_rng(0)
    for ep in range(3):
        obs, _ = env.reset(seed=ep)
        ref_obs, _ = ref.reset(seed=ep)
        np.testing.assert_array_equal(obs["player_0"], ref_obs)
        while env.agents:
            np.testing.assert_array_equal(env.state(), obs["player_0"])
            a = int(rng.integers(2))
            obs, rew, term, trunc, _ = env.step({"player_0": a})
            ref_obs, ref_r, ref_term, ref_trunc, _ = ref.step(a)
            np.testing.assert_array_equal(obs["player_0"], ref_obs)
            assert rew["player_0"] == ref_r
            assert term["player_0"] == ref_term
            assert trunc["player_0"] == (ref_trunc and not ref_term)
        assert ref_term or ref_trunc


@pytest.mark.parametrize("bad", [2, -1, 0.5, "1", None])
def test_facade_invalid_action(bad):
    env = parallel_env()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"invalid action .* for agent 'player_0'"):
        env.step({"player_0": bad})
    with pytest.raises(ValueError, match="player_1"):
        env.step({"player_1": 0})


# ---------------------------------------------------------------------- VecEnv semantics
def test_spec_and_registry():
    env = make_vec_env(CartPoleEnvConfig(), num_envs=3, seed=0)
    assert isinstance(env, GymnasiumVecEnv) and isinstance(env, VecEnv)
    assert isinstance(env.vec_env, CartPoleSameStepVectorEnv)
    assert ENV_CONFIGS["cartpole"] is CartPoleEnvConfig
    s = env.spec
    assert s.agents == ("player_0",)
    assert (s.obs_shape, s.state_dim, s.n_actions) == ((4,), 4, 2)
    assert s.state_is_concat_obs and s.episode_metrics == () and s.success_metric is None
    assert env.buf.obs.shape == (3, 1, 4) and env.buf.state.shape == (3, 4)
    assert (np.abs(env.buf.obs) <= 0.05).all()
    np.testing.assert_array_equal(env.buf.state, env.buf.obs[:, 0])
    env.close()


@pytest.mark.parametrize("vectorization", ["native", "sync"])
def test_autoreset_semantics_termination_and_truncation(vectorization):
    b, max_steps = 128, 40
    env = make_gymnasium_vec(
        CartPoleEnvConfig(max_steps=max_steps, vectorization=vectorization), b, seed=0
    )
    buf = env.buf
    one_step = gymnasium.make("CartPole-v1").unwrapped  # physics reference
    one_step.reset(seed=0)
    rng = np.random.default_rng(0)
    length = np.zeros(b, int)
    ret = np.zeros(b)
    n_term = n_trunc = 0
    for _ in range(3 * max_steps):
        prev = buf.obs[:, 0].copy()
        actions = rng.integers(0, 2, (b, 1))
        assert env.step(actions) is buf
        length += 1
        ret += buf.reward[:, 0]
        assert (buf.reward == 1.0).all()  # no reset step with a fake reward
        term, trunc = buf.terminated, buf.truncated
        assert not (term & trunc).any()
        done = term | trunc
        after = np.where(done[:, None], buf.final_obs[:, 0], buf.obs[:, 0])
        # every env advanced one physics step from its previous observation
        for i in range(0, b, 8):
            one_step.state = prev[i].astype(np.float64)
            one_step.steps_beyond_terminated = None
            ref_obs, *_ = one_step.step(int(actions[i, 0]))
            np.testing.assert_allclose(after[i], ref_obs, atol=1e-5)
        np.testing.assert_array_equal(term, fell(after))
        np.testing.assert_array_equal(trunc, ~term & (length == max_steps))
        e = np.flatnonzero(done)
        if len(e):
            # the ended episode's last observation/state, then the next episode's first
            assert (buf.final_obs[e] != buf.obs[e]).any(axis=-1).all()
            assert (np.abs(buf.obs[e]) <= 0.05).all()
            np.testing.assert_array_equal(buf.final_state[e], buf.final_obs[e, 0])
            np.testing.assert_array_equal(ret[e], length[e])  # return == length
            n_term += int(term.sum())
            n_trunc += int(trunc.sum())
            length[e] = 0
            ret[e] = 0
        np.testing.assert_array_equal(buf.state, buf.obs[:, 0])
    assert n_term >= 20 and n_trunc >= 3, (n_term, n_trunc)
    env.close()


def test_native_matches_gymnasium_make_across_episodes():
    """One native env and gymnasium.make("CartPole-v1") draw the same numbers: same seed and
    actions give the same trajectory, resets included."""
    env = make_gymnasium_vec(CartPoleEnvConfig(max_steps=25), 1, seed=5)
    ref = gymnasium.make("CartPole-v1", max_episode_steps=25)
    ref_obs, _ = ref.reset(seed=5)
    np.testing.assert_array_equal(env.buf.obs[0, 0], ref_obs)
    rng = np.random.default_rng(1)
    ends = {"term": 0, "trunc": 0}
    for _ in range(300):
        a = int(rng.integers(2))
        buf = env.step(np.array([[a]]))
        ref_obs, ref_r, ref_term, ref_trunc, _ = ref.step(a)
        assert buf.reward[0, 0] == ref_r
        assert buf.terminated[0] == ref_term
        assert buf.truncated[0] == (ref_trunc and not ref_term)
        if ref_term or ref_trunc:
            ends["term" if ref_term else "trunc"] += 1
            np.testing.assert_array_equal(buf.final_obs[0, 0], ref_obs)
            ref_obs, _ = ref.reset()
        np.testing.assert_array_equal(buf.obs[0, 0], ref_obs)
    assert ends["term"] >= 5 and ends["trunc"] >= 1, ends


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.DISABLED])
def test_sync_matches_independent_envs(mode):
    """The generic adapter over a SyncVectorEnv (both supported auto-reset modes) against
    B independent gymnasium.make envs seeded seed + i."""
    b, max_steps = 4, 20
    vec = gymnasium.make_vec(
        "CartPole-v1",
        num_envs=b,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": mode},
        max_episode_steps=max_steps,
    )
    env = GymnasiumVecEnv(vec, seed=10)
    refs = [gymnasium.make("CartPole-v1", max_episode_steps=max_steps) for _ in range(b)]
    ref_obs = [r.reset(seed=10 + i)[0] for i, r in enumerate(refs)]
    rng = np.random.default_rng(2)
    n_done = 0
    for _ in range(120):
        actions = rng.integers(0, 2, (b, 1))
        buf = env.step(actions)
        for i, r in enumerate(refs):
            o, rew, term, trunc, _ = r.step(int(actions[i, 0]))
            assert buf.reward[i, 0] == rew
            assert buf.terminated[i] == term and buf.truncated[i] == (trunc and not term)
            if term or trunc:
                n_done += 1
                np.testing.assert_array_equal(buf.final_obs[i, 0], o)
                o, _ = r.reset()
            ref_obs[i] = o
            np.testing.assert_array_equal(buf.obs[i, 0], o)
    assert n_done >= 10
    env.close()


def test_next_step_autoreset_is_refused():
    vec = gymnasium.make_vec("CartPole-v1", num_envs=2, vectorization_mode="vector_entry_point")
    assert vec.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    with pytest.raises(ValueError, match="NEXT_STEP"):
        GymnasiumVecEnv(vec)


def test_other_discrete_env_sync():
    env = make_gymnasium_vec(CartPoleEnvConfig(id="Acrobot-v1", vectorization="sync"), 2, seed=0)
    assert (env.spec.obs_shape, env.spec.n_actions) == ((6,), 3)
    env.step(np.array([[0], [2]]))
    env.close()


@pytest.mark.parametrize("bad", [2, -1])
def test_invalid_batch_action(bad):
    env = make_gymnasium_vec(CartPoleEnvConfig(), 3, seed=0)
    with pytest.raises(ValueError, match=rf"invalid action {bad} for agent 'player_0'"):
        env.step(np.array([[0], [bad], [1]]))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros((2, 1), np.int64))


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_steps", 0),
        ("max_steps", 1.5),
        ("id", "NoSuchEnv-v0"),
        ("vectorization", "async"),
        ("name", "bandit"),
    ],
)
def test_bad_config(field, value):
    with pytest.raises(ValueError, match=rf"env\.{field} = .* is invalid"):
        CartPoleEnvConfig(**{field: value})


def test_native_needs_cartpole():
    with pytest.raises(ValueError, match=r"env\.vectorization = 'native' is invalid"):
        CartPoleEnvConfig(id="Acrobot-v1")


# ---------------------------------------------------------------------- exact resume
def test_native_get_state_set_state_continues_exactly():
    """Save mid-episode, step the original and a restored copy with the same actions:
    identical buffers through terminations, truncations and their random resets."""
    import pickle

    from marl.envs.classic import CartPoleVecEnv

    cfg = CartPoleEnvConfig(max_steps=30)
    b = 64
    env = make_gymnasium_vec(cfg, b, seed=0)
    assert isinstance(env, CartPoleVecEnv)
    rng = np.random.default_rng(0)
    for _ in range(7):  # mid-episode: no env has ended yet at step 7
        env.step(rng.integers(0, 2, (b, 1)))
    assert not (env.buf.terminated | env.buf.truncated).any()
    saved = pickle.loads(pickle.dumps(env.get_state()))
    copy = make_gymnasium_vec(cfg, b, seed=123)  # other seed: other starts and resets
    copy.set_state(saved)
    np.testing.assert_array_equal(copy.buf.obs, env.buf.obs)
    n_done = 0
    for _ in range(80):
        actions = rng.integers(0, 2, (b, 1))
        x, y = env.step(actions), copy.step(actions)
        done = x.terminated | x.truncated
        n_done += int(done.sum())
        for key in ("obs", "state", "reward", "terminated", "truncated"):
            np.testing.assert_array_equal(getattr(x, key), getattr(y, key), err_msg=key)
        np.testing.assert_array_equal(x.final_obs[done], y.final_obs[done])
    assert n_done >= 2 * b  # the comparison went through many random resets
    env.close()
    copy.close()


def test_native_set_state_refuses_another_env_and_sync_has_none():
    env = make_gymnasium_vec(CartPoleEnvConfig(max_steps=30), 4, seed=0)
    with pytest.raises(ValueError, match="num_envs=4"):
        make_gymnasium_vec(CartPoleEnvConfig(max_steps=30), 5).set_state(env.get_state())
    with pytest.raises(ValueError, match="max_steps=30"):
        make_gymnasium_vec(CartPoleEnvConfig(max_steps=40), 4).set_state(env.get_state())
    sync = make_gymnasium_vec(CartPoleEnvConfig(vectorization="sync"), 2, seed=0)
    assert not hasattr(sync, "get_state")  # cannot save its envs: resume starts afresh
