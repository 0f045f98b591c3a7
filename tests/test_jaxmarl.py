"""The JaxMARL adapter (marl/envs/jaxmarl.py): VecEnv contract, SMAX semantics, resume.

Each test builds small batches (B <= 8); jit compiles dominate the time, so envs are
shared per module where a test does not change them.
"""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest

from marl.envs import make_vec_env
from marl.envs.base import ResumableVecEnv, VecEnv
from marl.envs.jaxmarl import INSTALL_HINT, JaxMarlEnvConfig, JaxMarlVecEnv

# JaxMARL MPE ends an episode when the step counter BEFORE the step is >= max_steps, so
# episodes last max_steps + 1 steps: max_steps=3 gives 4-step episodes.
SPREAD = dict(id="MPE_simple_spread_v3", kwargs={"max_steps": 3, "num_agents": 3})


def smax(**kw) -> JaxMarlEnvConfig:
    return JaxMarlEnvConfig(id="HeuristicEnemySMAX", scenario="3m", **kw)


@pytest.fixture(scope="module")
def smax_env() -> JaxMarlVecEnv:
    return JaxMarlVecEnv(smax(), num_envs=4, seed=0)


@pytest.fixture(scope="module")
def spread_env() -> JaxMarlVecEnv:
    return JaxMarlVecEnv(JaxMarlEnvConfig(**SPREAD), num_envs=3, seed=0)


def random_actions(buf, rng) -> np.ndarray:
    """A uniformly random allowed action per agent ([B, N])."""
    return (rng.random(buf.action_mask.shape) * buf.action_mask).argmax(-1)


def edit_units(env: JaxMarlVecEnv, **fields) -> None:
    """Overwrite SMAX unit arrays (``[B, units]``) of the batched state; the next step
    sees them."""
    core = env._states.state
    env._states = env._states.replace(state=core.replace(
        **{k: getattr(core, k).at[...].set(v) for k, v in fields.items()}))


def test_spec_shapes_and_dtypes(smax_env, spread_env):
    for env, n, a, mask, concat in ((smax_env, 3, 8, True, False),
                                    (spread_env, 3, 5, False, True)):
        assert isinstance(env, VecEnv) and isinstance(env, ResumableVecEnv)
        spec, b = env.spec, env.num_envs
        assert (spec.n_agents, spec.n_actions) == (n, a)
        assert (spec.has_action_mask, spec.state_is_concat_obs) == (mask, concat)
        buf = env.reset(seed=1)
        buf = env.step(random_actions(buf, np.random.default_rng(0)))
        o = spec.obs_shape[0]
        for name, shape, dtype in (("obs", (b, n, o), np.float32),
                                   ("state", (b, spec.state_dim), np.float32),
                                   ("reward", (b, n), np.float32),
                                   ("terminated", (b,), np.bool_),
                                   ("truncated", (b,), np.bool_),
                                   ("action_mask", (b, n, a), np.bool_),
                                   ("alive", (b, n), np.bool_)):
            arr = getattr(buf, name)
            assert arr.shape == shape and arr.dtype == dtype, name
    # SMAX's state is JaxMARL's world_state; spread's the concatenated observations.
    assert smax_env.spec.state_dim == smax_env.env.get_world_state(
        smax_env.env.reset(__import__("jax").random.PRNGKey(0))[1]).size
    np.testing.assert_array_equal(spread_env.buf.state,
                                  spread_env.buf.obs.reshape(spread_env.num_envs, -1))
    assert smax_env.spec.success_metric == "win"
    assert set(smax_env.buf.episode) == {"win", "enemies_killed", "allies_lost"}


def test_smax_state_is_the_world_state_scaled_per_feature():
    """``scale_state``: the same battle (same seed, same actions) seen raw and scaled;
    the factors written out by hand from SMAX's layout (per unit: health, x, y, cooldown,
    6 type bits; then 6 teams, 6 types), 32 x 32 map, longest cooldown 1.87 s."""
    raw_env = JaxMarlVecEnv(smax(scale_state=False), num_envs=4, seed=3)
    env = JaxMarlVecEnv(smax(), num_envs=4, seed=3)
    rng = np.random.default_rng(0)
    unit = np.array([1, 1 / 32, 1 / 32, 1 / 1.87] + [1] * 6)
    factor = np.concatenate([np.tile(unit, 6), np.ones(6), np.full(6, 1 / 6)])
    cooldown = np.zeros(72, bool)
    cooldown[3:60:10] = True
    saw_negative_cooldown = False
    for _ in range(40):
        a = random_actions(env.buf, rng)
        raw, scaled = raw_env.step(a).state, env.step(a).state
        saw_negative_cooldown |= bool((raw[:, cooldown] < 0).any())
        expect = raw.copy()
        expect[:, cooldown] = np.clip(raw[:, cooldown], 0.0, 1.87)
        np.testing.assert_allclose(scaled, expect * factor, rtol=1e-6, atol=1e-7)
        assert scaled.min() > -0.01 and scaled.max() < 1.01
    assert saw_negative_cooldown  # the clip was exercised
    assert raw_env.buf.state.max() > 5  # raw positions: the scale was needed


def test_importing_marl_envs_does_not_import_jax():
    code = "import sys, marl.envs, marl.config; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_factory_builds_the_adapter():
    env = make_vec_env(JaxMarlEnvConfig(**SPREAD), 2, seed=0)
    assert isinstance(env, JaxMarlVecEnv) and env.num_envs == 2


def test_truncation_and_auto_reset(spread_env):
    env = spread_env
    buf = env.reset(seed=3)
    first = buf.obs.copy()
    acts = np.zeros((3, 3), np.int64)
    for t in range(1, 5):
        before = buf.obs.copy()
        buf = env.step(acts)
        assert not buf.terminated.any()
        assert buf.truncated.all() == (t == 4) and buf.truncated.any() == (t == 4)
    # final_obs is the last observation of the ended episode, obs the next episode's first
    # (fresh landmarks: different from the ended one's, and from the first episode's).
    assert not np.array_equal(buf.final_obs, buf.obs)
    assert not np.array_equal(buf.obs, first)
    assert np.abs(buf.final_obs - before).max() < 1.0  # one more small move
    np.testing.assert_array_equal(buf.final_state, buf.final_obs.reshape(3, -1))
    buf = env.step(acts)
    assert not (buf.terminated | buf.truncated).any()


def test_action_masks_come_from_get_avail_actions_and_are_enforced(smax_env):
    env = smax_env
    buf = env.reset(seed=0)
    # At the start the enemy is out of range: moves and stop allowed, no attacks.
    assert buf.action_mask[..., :5].all() and not buf.action_mask[..., 5:].any()
    bad = np.full((4, 3), 4)
    bad[2, 1] = 6  # attack enemy_1, out of range
    with pytest.raises(ValueError, match=r"action 6 is masked for agent 'ally_1' \(env 2\)"):
        env.step(bad)
    with pytest.raises(ValueError, match="invalid action 8"):
        env.step(np.full((4, 3), 8))
    # Walk towards the enemy until attacks open up; masks always match the env's own.
    import jax

    avail_fn = jax.jit(jax.vmap(env.env.get_avail_actions))
    rng = np.random.default_rng(0)
    seen_attack = False
    for _ in range(30):
        buf = env.step(np.where(rng.random((4, 3)) < 0.8, 3, 1) * buf.alive)  # mostly right
        avail = avail_fn(env._states)
        want = np.stack([np.asarray(avail[a]) for a in env.agents], 1).astype(bool)
        want |= ~buf.alive[..., None]
        np.testing.assert_array_equal(buf.action_mask, want)
        seen_attack |= buf.action_mask[..., 5:].any()
    assert seen_attack


def test_dead_agents_are_not_alive_and_have_all_true_masks():
    env = JaxMarlVecEnv(smax(), num_envs=2, seed=0)
    edit_units(env, unit_health=np.array([[0.0, 45, 45, 45, 45, 45], [45.0] * 6]))
    buf = env.step(np.full((2, 3), 4))
    np.testing.assert_array_equal(buf.alive, [[False, True, True], [True, True, True]])
    assert buf.action_mask[0, 0].all() and not buf.action_mask[0, 1].all()
    assert not (buf.terminated | buf.truncated).any()
    # The dead agent's action (anything, even a masked attack) is never checked against
    # the env's rules and never moves it.
    pos = np.asarray(env._states.state.unit_positions[0, 0])
    buf = env.step(np.array([[7, 4, 4], [4, 4, 4]]))
    np.testing.assert_array_equal(np.asarray(env._states.state.unit_positions[0, 0]), pos)
    assert not buf.alive[0, 0]


def test_win_loss_and_draw_on_scripted_battles():
    env = JaxMarlVecEnv(smax(), num_envs=3, seed=0)
    alive, dead = 45.0, 0.0
    edit_units(env, unit_health=np.array([
        [alive, alive, alive, dead, dead, dead],  # all enemies dead: win
        [dead, dead, dead, alive, alive, alive],  # all allies dead: loss
        [dead, dead, dead, dead, dead, dead],  # both: a draw, not a win
    ]))
    buf = env.step(np.full((3, 3), 4))
    np.testing.assert_array_equal(buf.terminated, [True, True, True])
    assert not buf.truncated.any()
    np.testing.assert_array_equal(buf.episode["win"], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(buf.episode["enemies_killed"], [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(buf.episode["allies_lost"], [0.0, 1.0, 1.0])
    # The win bonus is in the reward; the next episode has everyone alive again.
    assert buf.reward[0].min() >= 1.0 and buf.reward[1].max() < 1.0
    assert buf.alive.all()
    assert (buf.final_state != buf.state).any()


def test_time_limit_truncates_smax():
    env = JaxMarlVecEnv(smax(kwargs={"max_steps": 2}), num_envs=2, seed=0)
    # SMAX, like JaxMARL's MPE, checks the step counter before counting the step: an
    # episode lasts max_steps + 1 steps.
    for _ in range(2):
        buf = env.step(np.full((2, 3), 4))
        assert not (buf.terminated | buf.truncated).any()
    buf = env.step(np.full((2, 3), 4))
    assert buf.truncated.all() and not buf.terminated.any()
    np.testing.assert_array_equal(buf.episode["win"], [0.0, 0.0])


def test_unit_dying_in_the_truncated_step_is_not_in_final_alive():
    """A unit killed in the very step the time limit cuts the battle is out of the ended
    episode (``final_alive`` False), so the learner does not bootstrap it as alive."""
    env = JaxMarlVecEnv(smax(kwargs={"max_steps": 2}), num_envs=2, seed=0)
    for _ in range(2):
        env.step(np.full((2, 3), 4))
    health = np.asarray(env._states.state.unit_health).copy()
    health[0, 0] = 0.0
    edit_units(env, unit_health=health)
    buf = env.step(np.full((2, 3), 4))
    assert buf.truncated.all() and not buf.terminated.any()
    np.testing.assert_array_equal(buf.final_alive, [[False, True, True], [True, True, True]])
    assert buf.alive.all()  # the next battle starts with everyone


@pytest.mark.parametrize("cfg", [smax(), JaxMarlEnvConfig(**SPREAD)], ids=["smax", "spread"])
def test_exact_resume_after_pickle_round_trip(cfg):
    rng = np.random.default_rng(0)
    env = JaxMarlVecEnv(cfg, num_envs=4, seed=7)
    for _ in range(6):
        env.step(random_actions(env.buf, rng))
    saved = pickle.loads(pickle.dumps(env.get_state()))
    rng_state = rng.bit_generator.state
    expected = []
    for _ in range(12):
        b = env.step(random_actions(env.buf, rng))
        expected.append((b.obs.copy(), b.state.copy(), b.reward.copy(), b.terminated.copy(),
                         b.truncated.copy(), b.action_mask.copy(), b.alive.copy()))
    other = JaxMarlVecEnv(cfg, num_envs=4, seed=123)  # different episodes until restored
    other.set_state(saved)
    rng.bit_generator.state = rng_state
    for want in expected:
        b = other.step(random_actions(other.buf, rng))
        got = (b.obs, b.state, b.reward, b.terminated, b.truncated, b.action_mask, b.alive)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)


def test_set_state_rejects_another_config(spread_env):
    other = JaxMarlVecEnv(JaxMarlEnvConfig(**SPREAD), num_envs=2, seed=0)
    with pytest.raises(ValueError, match="num_envs=3"):
        other.set_state(spread_env.get_state())


def test_render_frames(smax_env, spread_env):
    for env in (smax_env, spread_env):
        env.reset(seed=0)
        frame = env.render_rgb(0)
        assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8
        assert (frame != 235).any()  # something is drawn
    env = JaxMarlVecEnv(JaxMarlEnvConfig(**SPREAD), num_envs=2, seed=0)
    env.render_rgb(0)
    for _ in range(4):
        env.step(np.zeros((2, 3), np.int64))
    final, fresh = env.render_rgb(0, final=True), env.render_rgb(0)
    assert not np.array_equal(final, fresh)


# ---------------------------------------------------------------------- bad input
def test_unknown_env_id_lists_registered_ids():
    with pytest.raises(ValueError, match=r"unknown JaxMARL env id 'SMAXX'.*'MPE_simple_spread_v3'"):
        JaxMarlVecEnv(JaxMarlEnvConfig(id="SMAXX"), num_envs=1)


def test_unknown_smax_scenario_lists_known_maps():
    with pytest.raises(ValueError, match=r"unknown SMAX scenario '4m'.*'2s3z'.*'3m'"):
        JaxMarlVecEnv(JaxMarlEnvConfig(scenario="4m"), num_envs=1)


@pytest.mark.parametrize("cfg", [
    dict(id="MPE_simple_spread_v3", kwargs={"max_cycles": 25}),
    dict(id="HeuristicEnemySMAX", scenario="3m", kwargs={"max_step": 100}),
], ids=["mpe", "smax"])
def test_unknown_kwarg_names_the_key(cfg):
    key = next(iter(cfg["kwargs"]))
    with pytest.raises(ValueError, match=rf"env.kwargs.{key} is not accepted.*'max_steps'"):
        JaxMarlVecEnv(JaxMarlEnvConfig(**cfg), num_envs=1)


@pytest.mark.parametrize("bad, match", [
    (dict(id=""), "env.id = '' is invalid"),
    (dict(id="MPE_simple_spread_v3", scenario="3m"), "only for the SMAX ids"),
    (dict(kwargs=[1, 2]), "env.kwargs = .* is invalid"),
    (dict(kwargs={"scenario": "3m"}), "name the SMAX map with env.scenario"),
])
def test_bad_config_values(bad, match):
    with pytest.raises(ValueError, match=match):
        JaxMarlEnvConfig(**bad)


def test_missing_jax_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "jaxmarl", None)  # import jaxmarl -> ImportError
    with pytest.raises(ImportError, match="pip install -e \".\\[jax\\]\"") as err:
        JaxMarlVecEnv(JaxMarlEnvConfig(**SPREAD), num_envs=1)
    assert INSTALL_HINT in str(err.value)


# ---------------------------------------------------------------------- presets, end to end
PRESET_RUNS = {
    # run: (overrides, agents); the experiments cover env presets smax_3m, smax_2s3z and
    # mpe_spread_jax with their own algo settings (GRU actors for SMAX).
    "coma_smax_3m": (["+experiment=coma_smax_3m", "train.eval_video=true"], 3),
    "coma_smax_2s3z": (["+experiment=coma_smax_2s3z"], 5),
    "coma_spread_jax": (["+experiment=coma_spread_jax"], 3),
    "smax_5m_vs_6m": (["env=smax_5m_vs_6m"], 5),
}


def test_smax_2s3z_preset_is_3m_on_another_map():
    """coma_smax_2s3z reuses coma_smax_3m's algo and train settings (it extends it): only
    the map and the name differ."""
    from conftest import compose_config
    from omegaconf import OmegaConf

    a, b = (OmegaConf.to_container(OmegaConf.structured(compose_config([f"+experiment={e}"])))
            for e in ("coma_smax_3m", "coma_smax_2s3z"))
    assert a["algo"] == b["algo"] and a["train"] == b["train"]
    assert (a["env"]["scenario"], b["env"]["scenario"]) == ("3m", "2s3z")
    assert {k for k in a if a[k] != b[k]} == {"env", "name"}
    assert {k for k in a["env"] if a["env"][k] != b["env"][k]} == {"scenario"}


@pytest.mark.parametrize("run", sorted(PRESET_RUNS))
def test_every_preset_trains(run, tmp_path):
    from test_pettingzoo_experiments import TINY, check_summary, train

    overrides, n_agents = PRESET_RUNS[run]
    summary, trainer = train([*overrides, *TINY], tmp_path)
    check_summary(summary, 16)
    assert trainer.spec.n_agents == n_agents and isinstance(trainer.env, JaxMarlVecEnv)
    if "smax" in run:
        assert 0.0 <= summary["eval/success_rate"] <= 1.0  # the win rate
        assert trainer.cfg.algo.rnn == run.startswith("coma")
    if "eval_video=true" in overrides:
        assert list((tmp_path / "videos").glob("*.gif"))


@pytest.mark.slow
def test_trainer_resume_repeats_the_same_rows(tmp_path):
    """A run cut at its checkpoint and resumed writes the uninterrupted run's rows."""
    from test_pettingzoo_experiments import TINY, copy_cut_at_checkpoint, metric_rows, train

    run = ["+experiment=coma_smax_3m", *TINY, "train.total_env_steps=64",
           "train.eval_every_env_steps=16", "checkpoint.every_env_steps=32",
           "checkpoint.keep=5"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    train(run, whole)
    copy_cut_at_checkpoint(whole, cut, 32)
    train([*run, "resume=true"], cut)
    assert metric_rows(cut) == metric_rows(whole)


@pytest.mark.slow
def test_scripted_rules_order_as_the_plateau_reading_says():
    """experiments/smax/scripted.py, which the ablation README reads the 48% plateau
    against: on 3m, random play never wins, standing still loses to advancing, and
    shooting the weakest enemy in range beats shooting the first one."""
    from conftest import load_script

    res = load_script("experiments/smax/scripted.py").win_rates("3m", episodes=256)
    win = {rule: r["win_rate"] for rule, r in res.items()}
    assert win["random"] == 0.0
    assert win["hold_first"] < win["advance_first"] < win["advance_weakest"]
    assert 0.35 < win["advance_first"] < 0.65  # the learned policies' plateau (~0.48)
