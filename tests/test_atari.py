"""Tests of Atari Pong: Karpathy preprocessing, both VecEnv modes, PettingZoo facade."""

import warnings

import ale_py
import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

from marl.envs import ENV_CONFIGS, make_vec_env
from marl.envs.atari import PongCore, PongEnv, PongEnvConfig, karpathy_preprocess
from marl.envs.base import VecEnv

BACKGROUND = (144, 72, 17)
OPPONENT, AGENT, BALL = (213, 130, 74), (92, 186, 92), (236, 236, 236)


@pytest.fixture(scope="module")
def pong_frame() -> np.ndarray:
    """A real Pong screen grabbed from the emulator, ball in play."""
    ale = _plain_ale(seed=0)
    noop = ale.getMinimalActionSet()[0]
    for _ in range(120):
        ale.act(noop)
    return ale.getScreenRGB()


def run(core: PongCore, steps: int, seed: int = 0, action=None):
    """Step with random (or fixed) actions; yield (actions, buf) after each step."""
    rng = np.random.default_rng(seed)
    b, a = core.num_envs, core.spec.n_actions
    for _ in range(steps):
        acts = rng.integers(0, a, (b, 1)) if action is None else np.full((b, 1), action)
        yield acts, core.step(acts)


# ---------------------------------------------------------------------- preprocessing
def test_karpathy_preprocess_real_frame(pong_frame):
    frame = pong_frame
    assert frame.shape == (210, 160, 3) and frame.dtype == np.uint8
    img = karpathy_preprocess(frame)
    assert img.shape == (80, 80) and img.dtype == np.float32
    assert set(np.unique(img)) == {0.0, 1.0}
    # Independent reference from whole RGB colours: the pixels of the two paddles and the
    # ball in rows 35..194, sampled every second row and column.
    crop = frame[35:195:2, ::2]
    objects = {}
    for name, colour in (("opponent", OPPONENT), ("agent", AGENT), ("ball", BALL)):
        objects[name] = (crop == colour).all(-1)
        assert objects[name].any(), f"no {name} in the frame"
    expected = objects["opponent"] | objects["agent"] | objects["ball"]
    np.testing.assert_array_equal(img, expected.astype(np.float32))
    assert (img[(crop == BACKGROUND).all(-1)] == 0).all()  # background erased
    assert img.mean() < 0.02
    # the paddles are where Pong draws them: opponent left (x 16..19), agent right (x 140..143)
    cols = np.flatnonzero(img.any(0))
    assert {8, 9, 70, 71} <= set(cols.tolist())
    assert img[:, 8].sum() >= 4 and img[:, 70].sum() >= 4  # paddles are tall


def test_karpathy_preprocess_is_vectorised_and_checks_input(pong_frame):
    other = np.zeros_like(pong_frame)
    other[..., 0] = 144
    frames = np.stack([np.stack([pong_frame, other])] * 3)  # [3, 2, 210, 160, 3]
    out = karpathy_preprocess(frames)
    assert out.shape == (3, 2, 80, 80)
    np.testing.assert_array_equal(out[1, 0], karpathy_preprocess(pong_frame))
    assert not out[:, 1].any()
    single = karpathy_preprocess(pong_frame)
    np.testing.assert_array_equal(single - karpathy_preprocess(pong_frame.copy()), 0.0)
    with pytest.raises(ValueError, match="210, 160, 3"):
        karpathy_preprocess(np.zeros((84, 84, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        karpathy_preprocess(pong_frame.astype(np.float32))


# ---------------------------------------------------------------------- karpathy VecEnv
@pytest.mark.parametrize("backend", ["gymnasium", "ale_vector"])
def test_karpathy_vecenv_obs_is_frame_difference(backend):
    core = make_vec_env(PongEnvConfig(mode="karpathy", backend=backend), num_envs=3, seed=0)
    assert isinstance(core, PongCore) and isinstance(core, VecEnv)
    assert ENV_CONFIGS["pong"] is PongEnvConfig
    s = core.spec
    assert s.agents == ("player_0",) and s.obs_dtype == "float32"
    assert (s.obs_shape, s.n_actions) == ((6400,), 2)
    ram = backend == "gymnasium"
    assert (s.state_dim, s.state_is_concat_obs) == ((128, False) if ram else (6400, True))
    buf = core.buf
    assert buf.obs.shape == (3, 1, 6400) and buf.obs.dtype == np.float32
    assert not buf.obs.any()  # zero on an episode's first frame
    prev = karpathy_preprocess(np.stack([core.render_rgb(i) for i in range(3)]))
    moved = 0
    for _, b in run(core, 60):
        assert b is buf
        frames = np.stack([core.render_rgb(i) for i in range(3)])
        assert frames.shape == (3, 210, 160, 3) and frames.dtype == np.uint8
        cur = karpathy_preprocess(frames)
        np.testing.assert_array_equal(buf.obs[:, 0], (cur - prev).reshape(3, -1))
        if ram:
            assert ((buf.state >= 0) & (buf.state <= 1)).all()
            assert np.allclose(buf.state * 255, np.round(buf.state * 255), atol=1e-3)
        else:
            np.testing.assert_array_equal(buf.state, buf.obs[:, 0])
        assert set(np.unique(buf.obs)) <= {-1.0, 0.0, 1.0}
        assert set(np.unique(buf.reward)) <= {-1.0, 0.0, 1.0}
        moved += int(buf.obs.any())
        prev = cur
    assert moved > 30
    core.close()


def test_karpathy_actions_move_the_paddle_up_and_down():
    core = PongCore(PongEnvConfig(mode="karpathy", repeat_action_probability=0.0), 1, seed=0)

    def agent_paddle_rows() -> float:
        img = karpathy_preprocess(core.render_rgb(0))
        return float(np.flatnonzero(img[:, 70:72].any(1)).mean())

    for _ in run(core, 30, action=1):  # DOWN
        pass
    low = agent_paddle_rows()
    for _ in run(core, 15, action=0):  # UP
        pass
    high = agent_paddle_rows()
    assert high < low - 10, (high, low)  # row index grows downwards


@pytest.mark.parametrize(
    "mode, backend",
    [("karpathy", "ale_vector"), ("karpathy", "gymnasium"), ("standard", "ale_vector")],
)
def test_truncation_autoreset(mode, backend):
    cfg = PongEnvConfig(mode=mode, backend=backend, frameskip=4, max_episode_frames=200, noop_max=0)
    core = PongCore(cfg, num_envs=2, seed=1)
    buf = core.buf
    length = 0
    for _, b in run(core, 200):
        length += 1
        assert not b.terminated.any()
        if b.truncated.any():
            break
    assert b.truncated.all() and 45 <= length <= 55, length
    if mode == "karpathy":
        assert not buf.obs.any()  # the new episode's first frame
        final_frame = core.render_rgb(0, final=True)
        assert (final_frame != core.render_rgb(0)).any()
        if backend == "gymnasium":
            assert buf.final_obs.any()  # the last move of the ended episode
            assert (buf.final_state != buf.state).any(axis=1).all()  # RAM of each
        else:
            # ale-py 0.12.1 limitation (module docstring): the final screen is the
            # previous step's, so the final difference frame is empty
            assert not buf.final_obs.any()
            np.testing.assert_array_equal(buf.final_state, buf.final_obs[:, 0])
            assert not buf.state.any()
    else:
        assert (buf.final_obs != buf.obs).any(axis=(1, 2, 3, 4)).all()
        assert buf.final_state.shape == (2, 0)  # pixels: the learner builds the state
    # the next step belongs to the new episode: no fake step, no truncation
    _, b = next(run(core, 1))
    assert not b.truncated.any() and not b.terminated.any()
    core.close()


def _plain_ale(seed: int = 0, max_frames: int = 0) -> ale_py.ALEInterface:
    ale = ale_py.ALEInterface()
    ale.setLoggerMode(ale_py.LoggerMode.Error)
    ale.setInt("random_seed", seed)
    ale.setFloat("repeat_action_probability", 0.0)
    ale.setInt("max_num_frames_per_episode", max_frames)
    ale.loadROM(ale_py.roms.get_rom_path("pong"))
    ale.reset_game()
    return ale


def test_ale_vector_raw_screens_are_the_emulators():
    """Karpathy mode's ale_vector screens are bit-identical to a plain ALEInterface run
    with the same seed and actions (no resize, pooling or colour change)."""
    cfg = PongEnvConfig(
        mode="karpathy", backend="ale_vector", repeat_action_probability=0.0, frameskip=3
    )
    core = PongCore(cfg, num_envs=1, seed=4)
    ale = _plain_ale(seed=4)
    ale_actions = ale.getMinimalActionSet()
    np.testing.assert_array_equal(core.render_rgb(0), ale.getScreenRGB())
    for acts, _ in run(core, 80):
        for _ in range(3):
            ale.act(ale_actions[2 + int(acts[0, 0])])
        np.testing.assert_array_equal(core.render_rgb(0), ale.getScreenRGB())
    core.close()


def test_gymnasium_backend_matches_plain_atari_env_with_ram_state():
    """Karpathy mode's gymnasium backend against a plain ale_py AtariEnv with the same seed
    and actions: screens, rewards, flags, exact final screens and RAM / 255 as the state."""
    from ale_py.env import AtariEnv

    frames = 150
    cfg = PongEnvConfig(mode="karpathy", backend="gymnasium", max_episode_frames=frames)
    core = PongCore(cfg, num_envs=1, seed=9)
    assert (core.spec.state_dim, core.spec.state_is_concat_obs) == (128, False)
    ref = AtariEnv(game="pong", frameskip=3, max_num_frames_per_episode=frames)
    screen, _ = ref.reset(seed=9)
    np.testing.assert_array_equal(core.render_rgb(0), screen)
    np.testing.assert_allclose(core.buf.state[0], ref.ale.getRAM() / 255.0, atol=1e-6)
    ends = 0
    for acts, b in run(core, 120):
        screen, r, term, trunc, _ = ref.step(2 + int(acts[0, 0]))
        assert b.reward[0, 0] == r and b.terminated[0] == term and b.truncated[0] == trunc
        if term or trunc:
            ends += 1
            np.testing.assert_array_equal(core.render_rgb(0, final=True), screen)
            np.testing.assert_allclose(b.final_state[0], ref.ale.getRAM() / 255.0, atol=1e-6)
            screen, _ = ref.reset()
        np.testing.assert_array_equal(core.render_rgb(0), screen)
        np.testing.assert_allclose(b.state[0], ref.ale.getRAM() / 255.0, atol=1e-6)
    assert ends == 2
    core.close()


def test_standard_mode_full_game_terminates_with_real_score():
    core = make_vec_env(PongEnvConfig(), num_envs=2, seed=0)
    s = core.spec
    assert (s.obs_shape, s.obs_dtype, s.n_actions) == ((4, 84, 84), "uint8", 6)
    assert s.state_dim == 0 and s.state_is_concat_obs  # state built from encoded frames
    buf = core.buf
    assert buf.obs.shape == (2, 1, 4, 84, 84) and buf.obs.dtype == np.uint8
    assert buf.state.shape == (2, 0)
    ret = np.zeros(2)
    n_steps = 0
    for _, b in run(core, 3000, action=0):  # NOOP: the CPU wins
        n_steps += 1
        ret += b.reward[:, 0]
        assert not b.truncated.any()
        if b.terminated.any():
            break
    e = np.flatnonzero(b.terminated)
    assert n_steps > 300
    assert (ret[e] <= -15).all() and (ret[e] >= -21).all()  # real scores, not clipped sums
    assert np.isin(ret[e], np.arange(-21, -14)).all()
    frame = core.render_rgb(0)
    assert frame.shape == (84, 84, 3) and frame.dtype == np.uint8
    assert buf.state.shape == (2, 0)
    core.close()


@pytest.mark.parametrize("backend", ["gymnasium", "ale_vector"])
def test_seeded_reset_is_reproducible(backend):
    cfg = PongEnvConfig(mode="karpathy", backend=backend)
    a, b = PongCore(cfg, 2, seed=3), PongCore(cfg, 2, seed=3)
    for (_, x), (_, y) in zip(run(a, 50), run(b, 50), strict=True):
        np.testing.assert_array_equal(x.obs, y.obs)
        np.testing.assert_array_equal(x.reward, y.reward)
    a.close()
    b.close()


# ---------------------------------------------------------------------- PettingZoo facade
VARIANTS = [
    {"mode": "standard"},
    {"mode": "karpathy"},  # gymnasium back end
    {"mode": "karpathy", "backend": "ale_vector"},
]


@pytest.mark.parametrize("kwargs", VARIANTS, ids=lambda kw: "-".join(kw.values()))
def test_pettingzoo_parallel_api(kwargs):
    env = PongEnv(max_episode_frames=400, **kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parallel_api_test(env, num_cycles=150)
    assert not [str(w.message) for w in caught if "agent" in str(w.message).lower()]
    parallel_seed_test(lambda: PongEnv(**kwargs), num_cycles=30)


@pytest.mark.parametrize("kwargs", VARIANTS, ids=lambda kw: "-".join(kw.values()))
def test_facade_episode(kwargs):
    env = PongEnv(max_episode_frames=120, render_mode="rgb_array", **kwargs)
    space = env.observation_space("player_0")
    obs, infos = env.reset(seed=0)
    assert space.contains(obs["player_0"]) and infos == {"player_0": {}}
    assert env.state_space.contains(env.state())
    n = 0
    while env.agents:
        obs, rew, term, trunc, _ = env.step({"player_0": env.action_space("player_0").sample()})
        assert space.contains(obs["player_0"])
        n += 1
    assert trunc == {"player_0": True} and term == {"player_0": False}
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[-1] == 3
    with pytest.raises(RuntimeError, match="reset"):
        env.step({"player_0": 0})
    with pytest.raises(ValueError, match=r"invalid action .* for agent 'player_0'"):
        env.reset()
        env.step({"player_0": env.action_space("player_0").n})
    env.close()


@pytest.mark.parametrize("mode, bad", [("karpathy", 2), ("standard", 6), ("standard", -1)])
def test_invalid_batch_action(mode, bad):
    core = PongCore(PongEnvConfig(mode=mode), num_envs=2, seed=0)
    with pytest.raises(ValueError, match=rf"invalid action {bad} for agent 'player_0'"):
        core.step(np.array([[0], [bad]]))
    core.close()


@pytest.mark.parametrize(
    "field, value",
    [
        ("mode", "deepmind"),
        ("frameskip", 0),
        ("frameskip", 2.5),
        ("repeat_action_probability", 1.0),
        ("repeat_action_probability", -0.1),
        ("noop_max", -1),
        ("max_episode_frames", 0),
        ("num_threads", -2),
        ("name", "pong_v5"),
        ("backend", "envpool"),
    ],
)
def test_bad_config(field, value):
    with pytest.raises(ValueError, match=rf"env\.{field} = .* is invalid"):
        PongEnvConfig(**{field: value})


def test_backend_combinations():
    with pytest.raises(ValueError, match=r"env\.backend = 'gymnasium' is invalid"):
        PongEnvConfig(backend="gymnasium")  # standard mode
    with pytest.raises(ValueError, match=r"env\.noop_max = 5 is invalid"):
        PongEnvConfig(mode="karpathy", noop_max=5)
    assert PongEnvConfig(mode="karpathy", backend="ale_vector", noop_max=5).noop_max == 5


def test_mode_defaults():
    assert PongEnvConfig().effective_backend == "ale_vector"
    assert PongEnvConfig(mode="karpathy").effective_backend == "gymnasium"
    assert PongEnvConfig().effective_frameskip == 4
    assert PongEnvConfig().effective_noop_max == 30
    assert PongEnvConfig(mode="karpathy").effective_frameskip == 3
    assert PongEnvConfig(mode="karpathy").effective_noop_max == 0
    assert PongEnvConfig(mode="karpathy", frameskip=2).effective_frameskip == 2


# ---------------------------------------------------------------------- exact resume
def test_karpathy_gymnasium_get_state_set_state_continues_exactly():
    """Save mid-game, step the original and a restored copy (other seed) with the same
    actions: identical frames, rewards and flags, through truncations and resets (the
    ALE state includes its RNG: sticky actions stay in step)."""
    import pickle

    cfg = PongEnvConfig(mode="karpathy", max_episode_frames=450)  # 150 steps per game
    env = PongCore(cfg, num_envs=2, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(40):
        env.step(rng.integers(0, 2, (2, 1)))
    saved = pickle.loads(pickle.dumps(env.get_state()))
    copy = PongCore(cfg, num_envs=2, seed=7)
    copy.set_state(saved)
    n_done = n_points = 0
    for _ in range(300):
        actions = rng.integers(0, 2, (2, 1))
        x, y = env.step(actions), copy.step(actions)
        for key in ("obs", "state", "reward", "terminated", "truncated"):
            np.testing.assert_array_equal(getattr(x, key), getattr(y, key), err_msg=key)
        np.testing.assert_array_equal(env.render_rgb(1), copy.render_rgb(1))
        n_done += int((x.terminated | x.truncated).sum())
        n_points += int((x.reward != 0).sum())
    assert n_done >= 2 and n_points >= 4
    env.close()
    copy.close()


def test_get_state_only_where_the_emulators_allow_it():
    karpathy = PongCore(PongEnvConfig(mode="karpathy"), num_envs=1, seed=0)
    with pytest.raises(ValueError, match="num_envs=1"):
        PongCore(PongEnvConfig(mode="karpathy"), num_envs=2).set_state(karpathy.get_state())
    standard = PongCore(PongEnvConfig(), num_envs=1, seed=0)  # C++ AtariVectorEnv
    assert not hasattr(standard, "get_state") and not hasattr(standard, "set_state")
    karpathy.close()
    standard.close()
