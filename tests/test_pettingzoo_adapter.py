"""Tests of the generic PettingZoo adapter (marl/envs/pettingzoo/) and the shipped configs."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo import ParallelEnv

from marl.envs import ENVS, make_vec_env
from marl.envs.base import VecEnv
from marl.envs.pettingzoo import (
    PettingZooEnvConfig,
    PettingZooVecEnv,
    ResumablePettingZooVecEnv,
    ale_roms_dir,
    env_seeds,
    snapshot_error,
)

CONF = Path(__file__).resolve().parents[1] / "conf"
HERE = __name__  # module name of this file, for env.id = "<module>:<factory>"


def cfg(id: str = "mpe2:simple_spread_v3", **kw: Any) -> PettingZooEnvConfig:
    return PettingZooEnvConfig(id=id, **kw)


def spread(max_cycles: int = 25, **kw: Any) -> PettingZooEnvConfig:
    return cfg(kwargs={"max_cycles": max_cycles, "continuous_actions": False}, **kw)


# ---------------------------------------------------------------------- a tiny test env
class TinyEnv(ParallelEnv):
    """Agents ``a0..a{n-1}``; each step t (1-based) every live agent observes 10*t + i + 1.

    ``die_at[agent] = t``: the agent terminates in step t and leaves ``agents``. After
    ``max_steps`` steps the remaining agents are truncated (or terminated with
    ``terminate_at_end``). Reward of an agent = its action + 0.5, so tests see which actions
    reached the env. Passing an action for an agent that is not live raises.
    """

    metadata: ClassVar[dict[str, Any]] = {"name": "tiny_v0", "render_modes": []}

    def __init__(
        self,
        n_agents: int = 3,
        die_at: dict[str, int] | None = None,
        max_steps: int = 4,
        terminate_at_end: bool = False,
        obs_shape: tuple[int, ...] = (2,),
        obs_dtype: str = "float32",
        obs_shapes: dict[str, list[int]] | None = None,
        n_actions: int | dict[str, int] = 4,
        continuous: bool = False,
        info_mask: bool = False,
        with_state: bool = False,
        explode_at: int | None = None,
    ) -> None:
        self.render_mode = None
        self.possible_agents = [f"a{i}" for i in range(n_agents)]
        self.agents: list[str] = []
        self.die_at = dict(die_at or {})
        self.max_steps = max_steps
        self.terminate_at_end = terminate_at_end
        self.dtype = np.dtype(obs_dtype)
        self.shapes = {a: tuple(obs_shape) for a in self.possible_agents}
        self.shapes.update({a: tuple(s) for a, s in (obs_shapes or {}).items()})
        hi = 255 if self.dtype == np.uint8 else 1000
        self.observation_spaces = {
            a: spaces.Box(0, hi, self.shapes[a], self.dtype) for a in self.possible_agents
        }
        sizes = n_actions if isinstance(n_actions, dict) else {}
        self.action_spaces = {
            a: spaces.Box(-1, 1, (2,)) if continuous
            else spaces.Discrete(sizes.get(a, n_actions if isinstance(n_actions, int) else 4))
            for a in self.possible_agents
        }
        self.info_mask = info_mask
        self.with_state = with_state
        self.explode_at = explode_at
        self.t = 0
        self.resets = 0

    def observation_space(self, agent):
        return self.observation_spaces[agent]

    def action_space(self, agent):
        return self.action_spaces[agent]

    def _obs(self, agent: str) -> np.ndarray:
        i = self.possible_agents.index(agent)
        shape = self.shapes[agent]
        ramp = np.arange(int(np.prod(shape))).reshape(shape) % 7
        return (10 * self.t + i + 1 + ramp).astype(self.dtype)

    def _infos(self) -> dict[str, dict]:
        infos: dict[str, dict] = {a: {} for a in self.agents}
        if self.info_mask:
            for a in self.agents:
                n = self.action_spaces[a].n
                m = np.ones(n, np.int8)
                m[self.t % n] = 0
                infos[a]["action_mask"] = m
        return infos

    def state(self) -> np.ndarray:
        if not self.with_state:
            raise NotImplementedError("TinyEnv has no state() unless with_state=True")
        return np.array([self.t, self.resets], np.float32)

    def reset(self, seed=None, options=None):
        self.t = 0
        self.resets += 1
        self.agents = list(self.possible_agents)
        return {a: self._obs(a) for a in self.agents}, self._infos()

    def step(self, actions):
        if set(actions) != set(self.agents):
            raise AssertionError(f"actions for {sorted(actions)} but live agents {self.agents}")
        self.t += 1
        if self.explode_at == self.t:
            raise RuntimeError(f"boom at step {self.t}")
        obs = {a: self._obs(a) for a in self.agents}
        rew = {a: float(actions[a]) + 0.5 for a in self.agents}
        end = self.t >= self.max_steps
        term = {a: self.die_at.get(a) == self.t or (end and self.terminate_at_end)
                for a in self.agents}
        trunc = {a: end and not term[a] for a in self.agents}
        infos = {a: {} for a in self.agents}
        self.agents = [a for a in self.agents if not (term[a] or trunc[a])]
        infos.update(self._infos())
        return obs, rew, term, trunc, infos


def tiny(**kw: Any) -> TinyEnv:
    return TinyEnv(**kw)


def not_an_env(**kw: Any) -> object:
    return object()


def needs_missing_dependency(**kw: Any) -> object:
    import no_such_dependency_xyz  # noqa: F401

    return object()


def tiny_cfg(**kw: Any) -> PettingZooEnvConfig:
    extra = {k: kw.pop(k) for k in ("state", "num_workers", "wrappers", "obs_layout") if k in kw}
    return PettingZooEnvConfig(id=f"{HERE}:tiny", kwargs=kw, **extra)


def random_valid_actions(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """One allowed action per [B, N] row of ``mask`` [B, N, A]."""
    u = rng.random(mask.shape) * mask
    return u.argmax(-1).astype(np.int64)


# ---------------------------------------------------------------------- mpe2 simple_spread
def test_mpe_spread_matches_plain_env_with_auto_reset_and_state():
    from mpe2 import simple_spread_v3

    b, steps, seed, max_cycles = 3, 13, 123, 5
    env = make_vec_env(spread(max_cycles), b, seed=seed)
    assert isinstance(env, VecEnv) and isinstance(env, PettingZooVecEnv)
    spec = env.spec
    assert spec.agents == ("agent_0", "agent_1", "agent_2")
    assert spec.obs_shape == (18,) and spec.obs_dtype == "float32"
    assert spec.n_actions == 5 and spec.state_dim == 54
    assert not spec.state_is_concat_obs and not spec.has_action_mask
    buf = env.reset(seed=seed)
    plain = [simple_spread_v3.parallel_env(max_cycles=max_cycles, continuous_actions=False)
             for _ in range(b)]
    seeds = env_seeds(seed, b)
    assert len(set(seeds)) == b
    first = [p.reset(seed=s)[0] for p, s in zip(plain, seeds, strict=True)]
    for j in range(b):
        np.testing.assert_array_equal(buf.obs[j], np.stack([first[j][a] for a in spec.agents]))
        np.testing.assert_array_equal(buf.state[j], plain[j].state())
    assert buf.alive.all() and buf.action_mask.all()
    rng = np.random.default_rng(0)
    ends = 0
    for t in range(1, steps + 1):
        acts = rng.integers(0, 5, (b, 3))
        buf = env.step(acts)
        for j, p in enumerate(plain):
            step = {a: int(acts[j, i]) for i, a in enumerate(spec.agents)}
            obs, rew, term, trunc, _ = p.step(step)
            np.testing.assert_allclose(buf.reward[j], [rew[a] for a in spec.agents], rtol=1e-6)
            expect = np.stack([obs[a] for a in spec.agents])
            if t % max_cycles == 0:  # truncated at max_cycles, then auto-reset
                assert buf.truncated[j] and not buf.terminated[j]
                assert all(trunc.values()) and not p.agents
                np.testing.assert_array_equal(buf.final_obs[j], expect)
                np.testing.assert_array_equal(buf.final_state[j], p.state())
                assert buf.final_action_mask[j].all()
                obs, _ = p.reset()  # auto-reset continues the env's own random stream
                expect = np.stack([obs[a] for a in spec.agents])
                ends += 1
            else:
                assert not buf.truncated[j] and not buf.terminated[j]
            np.testing.assert_array_equal(buf.obs[j], expect)
            np.testing.assert_array_equal(buf.state[j], p.state())
        assert buf.alive.all()
    assert ends == b * (steps // max_cycles)
    env.close()


def test_mpe_concat_obs_state_is_the_env_state():
    """mpe_spread.yaml uses concat_obs: the same vector as mpe2's state()."""
    env = make_vec_env(spread(max_cycles=4, state="concat_obs"), 2, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(6):
        buf = env.step(rng.integers(0, 5, (2, 3)))
        for j in range(2):
            np.testing.assert_array_equal(buf.state[j], env._group.envs[j].state())
    env.close()


def test_reset_seed_reproducible_and_concat_obs_state():
    env = make_vec_env(spread(state="concat_obs"), 2, seed=7)
    assert env.spec.state_is_concat_obs and env.spec.state_dim == 3 * 18
    a = env.reset(seed=7).obs.copy()
    np.testing.assert_array_equal(env.buf.state, env.buf.obs.reshape(2, -1))
    env.step(np.ones((2, 3), np.int64))
    np.testing.assert_array_equal(env.buf.state, env.buf.obs.reshape(2, -1))
    np.testing.assert_array_equal(env.reset(seed=7).obs, a)
    assert not np.array_equal(env.reset(seed=8).obs, a)
    assert not np.array_equal(a[0], a[1])  # the two envs got different seeds
    env.close()


def test_env_without_state_uses_concat_obs():
    env = make_vec_env(tiny_cfg(n_agents=2), 2, seed=0)
    assert env.spec.state_is_concat_obs and env.spec.state_dim == 4
    env.step(np.zeros((2, 2), np.int64))
    np.testing.assert_array_equal(env.buf.state, env.buf.obs.reshape(2, -1))
    with pytest.raises(ValueError, match=r"env\.state = 'env' is invalid: .*does not implement"):
        make_vec_env(tiny_cfg(n_agents=2, state="env"), 1)
    env = make_vec_env(tiny_cfg(n_agents=2, with_state=True), 1)
    assert not env.spec.state_is_concat_obs and env.spec.state_dim == 2
    for t in (1, 2):
        env.step(np.zeros((1, 2), np.int64))
        assert env.buf.state[0, 0] == t  # TinyEnv.state() = [t, resets]


# ---------------------------------------------------------------------- action masks
def test_tictactoe_masks_via_aec_conversion():
    env = make_vec_env(cfg("pettingzoo.classic:tictactoe_v3", parallel=False), 2, seed=0)
    spec = env.spec
    assert spec.agents == ("player_1", "player_2") and spec.n_actions == 9
    assert spec.has_action_mask and spec.obs_shape == (18,)  # 3x3x2 int8 board, flattened
    buf = env.buf
    assert buf.action_mask[:, 0].all()  # player_1 moves first: every cell is free
    assert buf.action_mask[:, 1].tolist() == [[True] + [False] * 8] * 2  # waiting: action 0
    with pytest.raises(ValueError, match=r"action 3 is masked for agent 'player_2'"):
        env.step(np.array([[4, 0], [4, 3]]))
    buf = env.step(np.array([[4, 0], [0, 0]]))
    assert buf.action_mask[0, 1].tolist() == [True] * 4 + [False] + [True] * 4
    assert buf.action_mask[1, 1].tolist() == [False] + [True] * 8
    assert buf.action_mask[:, 0, 0].all() and not buf.action_mask[:, 0, 1:].any()
    with pytest.raises(ValueError, match=r"action 4 is masked for agent 'player_2'"):
        env.step(np.array([[0, 4], [0, 1]]))
    # Play random legal games until every env has finished one.
    rng = np.random.default_rng(1)
    done = np.zeros(2, bool)
    for _ in range(40):
        buf = env.step(random_valid_actions(rng, buf.action_mask))
        assert not buf.truncated.any()
        for j in np.flatnonzero(buf.terminated):
            done[j] = True
            assert buf.final_obs[j].any()  # the final board
            assert not buf.obs[j].any()  # a fresh, empty board
            assert buf.action_mask[j, 0].all()
        if done.all():
            break
    assert done.all()
    env.close()


def test_action_mask_from_infos():
    env = make_vec_env(tiny_cfg(n_agents=2, n_actions=3, info_mask=True), 1)
    assert env.spec.has_action_mask
    assert env.buf.action_mask[0].tolist() == [[False, True, True]] * 2
    with pytest.raises(ValueError, match=r"action 0 is masked for agent 'a0'"):
        env.step(np.array([[0, 1]]))
    buf = env.step(np.array([[1, 2]]))
    assert buf.action_mask[0].tolist() == [[True, False, True]] * 2


# ---------------------------------------------------------------------- dying agents
def test_agents_dying_mid_episode():
    env = make_vec_env(tiny_cfg(die_at={"a2": 1, "a0": 2}, max_steps=3), 1)
    buf = env.buf
    assert buf.alive.tolist() == [[True] * 3]
    # Step 1: a2 terminates (its action still reaches the env); the episode goes on.
    buf = env.step(np.array([[1, 2, 3]]))
    assert buf.reward.tolist() == [[1.5, 2.5, 3.5]]
    assert not buf.terminated[0] and not buf.truncated[0]
    assert buf.alive.tolist() == [[True, True, False]]
    assert buf.obs[0, :, 0].tolist() == [11, 12, 0] and not buf.obs[0, 2].any()
    # Step 2: a2's action is ignored (the env would raise if it got one); a0 dies.
    buf = env.step(np.array([[0, 1, 3]]))
    assert buf.reward.tolist() == [[0.5, 1.5, 0.0]]
    assert buf.alive.tolist() == [[False, True, False]]
    assert buf.obs[0, :, 0].tolist() == [0, 22, 0]
    assert buf.state[0].tolist() == buf.obs[0].reshape(-1).tolist()
    # Step 3: a1 is truncated, the episode ends and a new one starts.
    buf = env.step(np.array([[3, 2, 1]]))
    assert buf.truncated[0] and not buf.terminated[0]
    assert buf.reward.tolist() == [[0.0, 2.5, 0.0]]
    assert buf.final_obs[0, :, 0].tolist() == [0, 32, 0]
    assert buf.final_state[0].tolist() == [0, 0, 32, 33, 0, 0]
    assert buf.alive.tolist() == [[True] * 3]
    assert buf.obs[0, :, 0].tolist() == [1, 2, 3]


def test_all_agents_dying_terminates_episode():
    env = make_vec_env(tiny_cfg(die_at={"a0": 1, "a1": 2}, n_agents=2, max_steps=9), 2)
    env.step(np.zeros((2, 2), np.int64))
    assert env.buf.alive.tolist() == [[False, True]] * 2
    buf = env.step(np.zeros((2, 2), np.int64))
    assert buf.terminated.all() and not buf.truncated.any()
    assert buf.final_obs[:, :, 0].tolist() == [[0, 22]] * 2
    assert buf.alive.all()
    # All agents terminated at the time limit: terminated, not truncated.
    env = make_vec_env(tiny_cfg(max_steps=1, terminate_at_end=True), 1)
    buf = env.step(np.zeros((1, 3), np.int64))
    assert buf.terminated[0] and not buf.truncated[0]


def test_agent_terminating_as_others_are_truncated_is_not_bootstrapped():
    # a1 terminates in the last step, a0 and a2 are truncated there; a3 died earlier.
    kw = dict(n_agents=4, die_at={"a1": 3, "a3": 1}, max_steps=3)
    for workers in (0, 1):
        env = make_vec_env(tiny_cfg(num_workers=workers, **kw), 2)
        try:
            for _ in range(2):
                buf = env.step(np.zeros((2, 4), np.int64))
                assert not (buf.terminated | buf.truncated).any()
            buf = env.step(np.zeros((2, 4), np.int64))
            assert buf.truncated.all() and not buf.terminated.any()
            assert buf.final_alive.tolist() == [[True, False, True, False]] * 2
            assert buf.alive.all()  # the next episode has begun
        finally:
            env.close()
    # Everyone truncated: all bootstrapped.
    env = make_vec_env(tiny_cfg(max_steps=1), 1)
    buf = env.step(np.zeros((1, 3), np.int64))
    assert buf.truncated[0] and buf.final_alive.tolist() == [[True] * 3]


# ---------------------------------------------------------------------- observations
def test_pixel_observations_become_channel_first_uint8():
    env = make_vec_env(tiny_cfg(obs_shape=(6, 5, 2), obs_dtype="uint8", n_agents=2), 2)
    assert env.spec.obs_shape == (2, 6, 5) and env.spec.obs_dtype == "uint8"
    assert env.buf.obs.dtype == np.uint8
    ref = TinyEnv(obs_shape=(6, 5, 2), obs_dtype="uint8", n_agents=2)
    ref.reset()
    np.testing.assert_array_equal(env.buf.obs[1, 1], ref._obs("a1").transpose(2, 0, 1))
    env = make_vec_env(tiny_cfg(obs_shape=(6, 5), obs_dtype="uint8", n_agents=2), 1)
    assert env.spec.obs_shape == (1, 6, 5)
    ref2 = TinyEnv(obs_shape=(6, 5), obs_dtype="uint8", n_agents=2)
    ref2.reset()
    np.testing.assert_array_equal(env.buf.obs[0, 1, 0], ref2._obs("a1"))
    # Float grids are flattened unless obs_layout says they are images.
    env = make_vec_env(tiny_cfg(obs_shape=(6, 5, 2)), 1)
    assert env.spec.obs_shape == (60,) and env.spec.obs_dtype == "float32"
    flat = TinyEnv(obs_shape=(6, 5, 2))._obs("a0").reshape(-1)  # the t=0 observation
    np.testing.assert_array_equal(env.buf.obs[0, 0], flat)
    env = make_vec_env(tiny_cfg(obs_shape=(6, 5, 2), obs_layout="hwc"), 1)
    assert env.spec.obs_shape == (2, 6, 5) and env.spec.obs_dtype == "float32"
    env = make_vec_env(tiny_cfg(obs_shape=(2, 6, 5), obs_layout="chw"), 1)
    assert env.spec.obs_shape == (2, 6, 5)
    env = make_vec_env(tiny_cfg(obs_shape=(6, 5, 2), obs_dtype="uint8", obs_layout="flat"), 1)
    assert env.spec.obs_shape == (60,) and env.spec.obs_dtype == "uint8"


def test_supersuit_wrappers_are_applied_in_order():
    # agent_indicator (short name) appends a one-hot agent id to every observation.
    env = make_vec_env(tiny_cfg(n_agents=2, wrappers=["agent_indicator"]), 1)
    assert env.spec.obs_shape == (4,)
    assert (env.buf.obs[0, :, 2:] > 0).tolist() == [[True, False], [False, True]]
    np.testing.assert_array_equal(env.buf.obs[0, :, :2], [[1, 2], [2, 3]])
    env = make_vec_env(
        tiny_cfg(n_agents=2, obs_shape=(8, 8, 3), obs_dtype="uint8",
                 wrappers=[{"color_reduction_v0": {"mode": "R"}},
                           {"resize_v1": {"x_size": 6, "y_size": 5}},
                           {"frame_stack_v1": [3]}]),
        1,
    )
    assert env.spec.obs_shape == (3, 5, 6) and env.spec.obs_dtype == "uint8"


def test_butterfly_envs_get_a_render_mode_so_observations_are_drawn():
    small = [{"color_reduction_v0": {"mode": "full"}}, {"resize_v1": {"x_size": 16, "y_size": 16}}]
    env = make_vec_env(cfg("butterfly/cooperative_pong-v6", wrappers=small, state="concat_obs"), 1)
    assert env._group.envs[0].unwrapped.render_mode == "rgb_array"
    assert env.spec.obs_shape == (1, 16, 16) and env.buf.obs.any()  # paddles and ball
    env.close()


# ---------------------------------------------------------------------- workers
def test_workers_match_in_process():
    kw = dict(die_at={"a1": 2}, max_steps=3)
    ref = make_vec_env(tiny_cfg(**kw), 5, seed=3)
    env = make_vec_env(tiny_cfg(num_workers=2, **kw), 5, seed=3)
    try:
        assert env.spec == ref.spec and env.num_workers == 2
        rng = np.random.default_rng(0)
        names = ("obs", "state", "reward", "terminated", "truncated", "alive", "action_mask")
        for _ in range(7):
            acts = rng.integers(0, 4, (5, 3))
            a, b = ref.step(acts), env.step(acts)
            for name in names:
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
            ended = a.terminated | a.truncated
            np.testing.assert_array_equal(a.final_obs[ended], b.final_obs[ended])
        with pytest.raises(ValueError, match="invalid action 9"):
            env.step(np.full((5, 3), 9))
    finally:
        env.close()
    with pytest.raises(RuntimeError, match="closed"):
        env.step(np.zeros((5, 3), np.int64))


def test_worker_errors_are_reported():
    env = make_vec_env(tiny_cfg(explode_at=2, num_workers=1), 2)
    try:
        env.step(np.zeros((2, 3), np.int64))
        with pytest.raises(RuntimeError, match=r"(?s)env worker 0 \(envs 0\.\.1\).*boom at step 2"):
            env.step(np.zeros((2, 3), np.int64))
    finally:
        env.close()


# ---------------------------------------------------------------------- exact resume
RESUME_FIELDS = ("obs", "state", "reward", "terminated", "truncated", "alive", "action_mask")


def assert_same_step(a, b) -> None:
    for name in RESUME_FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    ended = a.terminated | a.truncated
    np.testing.assert_array_equal(a.final_obs[ended], b.final_obs[ended])
    np.testing.assert_array_equal(a.final_state[ended], b.final_state[ended])


def run_resume_check(env_cfg, b: int, before: int, after: int, other_cfg=None) -> None:
    """Step ``before`` steps, save, restore into a new env (other seed), then step both
    ``after`` steps with the same actions: every buffer must be identical."""
    rng = np.random.default_rng(0)
    env = make_vec_env(env_cfg, b, seed=1)
    copy = make_vec_env(other_cfg or env_cfg, b, seed=2)
    try:
        assert isinstance(env, ResumablePettingZooVecEnv)
        for _ in range(before):
            env.step(random_valid_actions(rng, env.buf.action_mask))
        saved = pickle.loads(pickle.dumps(env.get_state()))  # as in a checkpoint
        copy.set_state(saved)
        for name in RESUME_FIELDS:
            np.testing.assert_array_equal(getattr(env.buf, name), getattr(copy.buf, name))
        for _ in range(after):
            acts = random_valid_actions(rng, env.buf.action_mask)
            assert_same_step(env.step(acts), copy.step(acts))
    finally:
        env.close()
        copy.close()


def test_mpe_resume_mid_episode_continues_identically():
    # 7 steps into 5-step episodes: mid-episode, after an auto-reset; 12 more steps cross
    # two more episode ends (the envs' own random streams must be restored).
    run_resume_check(spread(max_cycles=5), b=3, before=7, after=12)


def test_resume_with_dying_agents_masks_and_workers():
    kw = dict(die_at={"a1": 2}, max_steps=4, info_mask=True)
    run_resume_check(tiny_cfg(**kw), b=3, before=6, after=9)  # a1 dead at the save
    # Saved in process, restored into workers (and back): num_workers may differ.
    run_resume_check(tiny_cfg(**kw), b=3, before=6, after=9,
                     other_cfg=tiny_cfg(num_workers=2, **kw))
    run_resume_check(tiny_cfg(num_workers=2, **kw), b=3, before=5, after=9,
                     other_cfg=tiny_cfg(**kw))


def test_pursuit_and_matrix_game_resume():
    pursuit = cfg("sisl/pursuit-v5", kwargs={"max_cycles": 6, "n_pursuers": 3,
                                            "n_evaders": 4, "x_size": 8, "y_size": 8})
    run_resume_check(pursuit, b=2, before=4, after=6)
    run_resume_check(cfg("marl.envs.matrix:penalty_parallel_env"), b=2, before=1, after=3)


def test_pixel_configs_are_not_resumable():
    """SuperSuit's closure-based wrappers cannot be pickled: no get_state, so a resumed
    run starts fresh episodes (ResumableVecEnv protocol)."""
    c = cfg("butterfly/cooperative_pong-v6", state="concat_obs",
            wrappers=[{"color_reduction_v0": {"mode": "full"}},
                      {"resize_v1": {"x_size": 16, "y_size": 16}}])
    assert "Can't pickle local object" in snapshot_error(c)
    env = make_vec_env(c, 1, seed=0)
    try:
        assert isinstance(env, PettingZooVecEnv) and not hasattr(env, "get_state")
    finally:
        env.close()


def test_set_state_rejects_another_config_or_batch():
    env = make_vec_env(spread(max_cycles=5), 2, seed=0)
    saved = env.get_state()
    with pytest.raises(ValueError, match=r"saved PettingZoo env state is for "
                       r"env\.id='mpe2:simple_spread_v3', num_envs=2 .* this env .* num_envs=3"):
        make_vec_env(spread(max_cycles=5), 3).set_state(saved)
    with pytest.raises(ValueError, match=r"config fields differing: \['kwargs'\]"):
        make_vec_env(spread(max_cycles=6), 2).set_state(saved)


def test_mpe_snapshot_keeps_rendering():
    c = cfg(kwargs={"continuous_actions": False, "render_mode": "rgb_array"})
    env = make_vec_env(c, 1, seed=0)
    env.step(np.ones((1, 3), np.int64))
    copy = make_vec_env(c, 1, seed=1)
    copy.set_state(env.get_state())
    frame = env._group.envs[0].render()
    assert frame.std() > 0
    np.testing.assert_array_equal(frame, copy._group.envs[0].render())


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: cfg("no_such_module_xyz:env"), r"env\.id = 'no_such_module_xyz:env' is invalid: "
         r"no module named 'no_such_module_xyz'"),
        (lambda: cfg("mpe2:simple_spred_v3"), r"'mpe2' has no attribute 'simple_spred_v3'; "
         r"close names: \['simple_spread_v3'"),
        (lambda: cfg("pettingzoo.butterfly:cooperative_pong_v5"), r"deprecated, use "
         r"cooperative_pong_v6"),
        (lambda: cfg("butterfly/pistonbal-v6"), r"env\.id = 'butterfly/pistonbal-v6' is invalid: "
         r"not in PettingZoo's parallel registry"),
        (lambda: cfg("classic/tictactoe-v3"), r"in the aec registry: set env\.parallel = false"),
        (lambda: cfg(f"{HERE}:not_an_env"), r"the factory returned a builtins\.object, not a "
         r"PettingZoo ParallelEnv"),
        (lambda: cfg(f"{HERE}:needs_missing_dependency"), r"cannot be built: a dependency is "
         r"missing \(ModuleNotFoundError: No module named 'no_such_dependency_xyz'\)"),
        (lambda: cfg("pettingzoo.classic:tictactoe_v3"), r"has no parallel_env\(\) \(or try "
         r"env\.parallel = false\)"),
        (lambda: cfg(f"{HERE}:tiny", parallel=False), r"returned a ParallelEnv: set "
         r"env\.parallel = true"),
        (lambda: cfg(kwargs={"continuous_actions": True}), r"only Discrete action spaces are "
         r"supported; agent 'agent_0' has Box"),
        (lambda: tiny_cfg(continuous=True), r"only Discrete action spaces are supported"),
        (lambda: tiny_cfg(n_actions={"a0": 3, "a1": 5, "a2": 5}), r"different sizes "
         r"\{'a0': 3, 'a1': 5, 'a2': 5\}; add the SuperSuit wrapper pad_action_space_v0"),
        (lambda: tiny_cfg(obs_shapes={"a1": [3]}), r"observations have different shapes .*"
         r"pad_observations_v0"),
        (lambda: cfg(kwargs={"bogus": 1}), r"env\.kwargs = \{'bogus': 1\} is invalid: .*"
         r"TypeError"),
        (lambda: tiny_cfg(wrappers=[{"resize_v1": {"size": 3}}]), r"env\.wrappers\[0\] = .* is "
         r"invalid: supersuit\.resize_v1 raised TypeError"),
    ],
    ids=["no-module", "no-attribute", "deprecated", "not-in-registry", "aec-registry",
         "not-an-env", "missing-dependency", "no-parallel-env", "parallel-not-aec",
         "box-actions", "box-actions-tiny", "mixed-action-sizes", "mixed-obs-shapes",
         "bad-kwargs", "bad-wrapper-kwargs"],
)
def test_bad_env_inputs_fail_at_construction(make, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(ValueError, match=match):
            make_vec_env(make(), 2, seed=0)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"id": "simple_spread"}, r"env\.id = 'simple_spread' is invalid: must be "
         r"'<module>:<factory>'"),
        ({"wrappers": ["colour_reduction_v0"]}, r"env\.wrappers\[0\] = 'colour_reduction_v0' is "
         r"invalid: SuperSuit has no wrapper 'colour_reduction_v0'; did you mean "
         r"\['color_reduction_v0'"),
        ({"wrappers": [{"frame_stack_v1": 4, "dtype_v0": "uint8"}]}, r"one-key mapping"),
        ({"wrappers": "agent_indicator_v0"}, r"env\.wrappers = .* must be a list"),
        ({"state": "global"}, r"env\.state = 'global' is invalid: choose one of"),
        ({"num_workers": -1}, r"env\.num_workers = -1 is invalid"),
        ({"obs_layout": "nhwc"}, r"env\.obs_layout = 'nhwc' is invalid: choose one of"),
        ({"kwargs": [1, 2]}, r"env\.kwargs = \[1, 2\] is invalid"),
    ],
)
def test_bad_config_values(kw, match):
    with pytest.raises(ValueError, match=match):
        PettingZooEnvConfig(**kw)


def test_missing_wrappers_fix_the_errors():
    env = make_vec_env(tiny_cfg(obs_shapes={"a1": [3]}, wrappers=["pad_observations"]), 1)
    assert env.spec.obs_shape == (3,)
    env = make_vec_env(tiny_cfg(n_actions={"a0": 3, "a1": 5, "a2": 5},
                                wrappers=["pad_action_space_v0"]), 1)
    assert env.spec.n_actions == 5


# ---------------------------------------------------------------------- shipped configs
def _compose(env_name: str):
    from conftest import compose_config

    return compose_config([f"env={env_name}"]).env


SHIPPED = {
    # name: (agents, obs_shape, obs_dtype, state_is_concat_obs)
    "pettingzoo": (3, (18,), "float32", False),
    "mpe_spread": (3, (18,), "float32", True),
    "coop_pong": (2, (4, 84, 84), "uint8", True),
    "pistonball": (5, (4, 64, 64), "uint8", True),
    "pursuit": (8, (147,), "float32", False),
    "ma_pong": (2, (4, 84, 84), "uint8", True),
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_configs_build_and_step(name):
    env_cfg = _compose(name)
    assert isinstance(env_cfg, ENVS["pettingzoo"].config)
    n, shape, dtype, concat = SHIPPED[name]
    env = make_vec_env(env_cfg, 2, seed=0)
    try:
        spec = env.spec
        assert (spec.n_agents, spec.obs_shape, spec.obs_dtype) == (n, shape, dtype)
        assert spec.state_is_concat_obs == concat
        rng = np.random.default_rng(0)
        def picture(o):  # pixels: the newest stacked frame
            return o[:, :, -1] if dtype == "uint8" else o

        newest = picture(env.buf.obs).copy()
        for _ in range(4):
            buf = env.step(random_valid_actions(rng, env.buf.action_mask))
            assert buf.obs.shape == (2, n, *shape) and buf.obs.dtype == np.dtype(dtype)
            assert buf.state.shape == (2, spec.state_dim) and np.isfinite(buf.state).all()
        assert not np.array_equal(picture(buf.obs), newest)  # the picture moves
        if name == "ma_pong":
            rom = env._group.envs[0].unwrapped.rom_path
            assert Path(rom).resolve().parent == Path(ale_roms_dir()).resolve()
    finally:
        env.close()


def test_matrix_yaml_configs_compose():
    assert _compose("climbing").name == "climbing"
    pen = _compose("penalty")
    assert pen.name == "penalty" and pen.k == 100.0


# ---------------------------------------------------------------------- episode statistics
class ScoreEnv(ParallelEnv):
    """Two agents, episodes of ``length`` steps; agent i's action u scores u * (i + 1).

    The last step's infos carry, per agent: ``team`` (the episode's summed score, the
    same for both), ``own`` (its own score), ``big`` (True) only when ``team`` > 10,
    and values that are not numeric scalars (an array, a string). Every other step's
    infos carry ``step``, which must not count."""

    metadata: ClassVar[dict] = {"name": "score_v0", "is_parallelizable": True}

    def __init__(self, length: int = 3) -> None:
        self.possible_agents = ["a0", "a1"]
        self.length = length
        self.action_spaces = {a: spaces.Discrete(3) for a in self.possible_agents}
        self.observation_spaces = {a: spaces.Box(0, 9, (1,), np.float32)
                                   for a in self.possible_agents}

    def action_space(self, agent):
        return self.action_spaces[agent]

    def observation_space(self, agent):
        return self.observation_spaces[agent]

    def reset(self, seed=None, options=None):
        self.agents, self.t, self.own = list(self.possible_agents), 0, [0.0, 0.0]
        return {a: np.zeros(1, np.float32) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions):
        self.t += 1
        for i, a in enumerate(self.possible_agents):
            self.own[i] += actions[a] * (i + 1)
        end = self.t >= self.length
        obs = {a: np.full(1, self.t, np.float32) for a in self.agents}
        infos = {a: {"step": self.t} for a in self.agents}
        if end:
            for i, a in enumerate(self.possible_agents):
                infos[a] = {"team": np.float64(sum(self.own)), "own": self.own[i],
                            "mask": np.ones(3), "label": "done"}
                if sum(self.own) > 10:
                    infos[a]["big"] = True
            self.agents = []
        flags = dict.fromkeys(obs, end)
        return obs, dict.fromkeys(obs, 0.0), flags, dict.fromkeys(obs, False), infos


def score(**kw: Any) -> ScoreEnv:
    return ScoreEnv(**kw)


def score_cfg(**kw: Any) -> PettingZooEnvConfig:
    return PettingZooEnvConfig(id=f"{HERE}:score", kwargs={"length": 3}, **kw)


@pytest.mark.parametrize("workers", [0, 2])
def test_numeric_infos_of_an_episodes_last_step_become_its_statistics(workers):
    """``info/<key>`` = mean over the agents, ``info/<agent>/<key>`` each agent's own;
    non-scalars and the infos of earlier steps are skipped; NaN where an episode did not
    report a key (``big``: only env 0's episodes)."""
    env = make_vec_env(score_cfg(num_workers=workers), 2, seed=0)
    try:
        assert env.spec.episode_metrics == ()
        acts = np.array([[1, 2], [0, 1]])
        for _ in range(2):
            buf = env.step(acts)
            assert buf.episode == {}  # no episode ended yet, nothing reported
        buf = env.step(acts)
        assert buf.terminated.all()
        ep = {k: v.tolist() for k, v in buf.episode.items()}
        big = ep.pop("info/big"), ep.pop("info/a0/big"), ep.pop("info/a1/big")
        assert ep == {"info/team": [15.0, 6.0], "info/own": [7.5, 3.0],
                      "info/a0/team": [15.0, 6.0], "info/a1/team": [15.0, 6.0],
                      "info/a0/own": [3.0, 0.0], "info/a1/own": [12.0, 6.0]}
        assert all(b[0] == 1.0 and np.isnan(b[1]) for b in big)
        for _ in range(3):
            buf = env.step(acts[::-1])  # now env 1 scores big, env 0 not
        assert buf.episode["info/team"].tolist() == [6.0, 15.0]
        assert np.isnan(buf.episode["info/big"][0]) and buf.episode["info/big"][1] == 1.0
    finally:
        env.close()


def test_info_statistics_reach_the_metrics_rows():
    """Through the runner (its rollout's ``episodes`` and the tracker train.py pops) and
    :func:`summarise_episodes`: ``train/info/<key>_mean``; per-agent rows only where the
    agents' values differ (``own``, not ``team``); a key some episodes lack is averaged
    over those that report it. Evaluation gives the same under ``eval/``."""
    import torch

    from marl.core.runner import Runner, evaluate
    from marl.io.metrics import summarise_episodes

    class Constant:  # env 0: a0 plays 1, a1 plays 2 (team 15); env 1: 0 and 1 (team 6)
        hidden_dim, eps = 0, 0.0

        def act(self, obs, prev_actions, first, action_mask, h, greedy=False):
            return torch.tensor([[1, 2], [0, 1]]), h

    env = make_vec_env(score_cfg(), 2, seed=0)
    try:
        runner = Runner(env, t_len=6, hidden_dim=0, seed=0)
        ro = runner.collect(Constant())
        assert ro.episodes["info/team"].tolist() == [15.0, 6.0] * 2
        row = summarise_episodes("train", runner.episodes.pop(), env.spec)
        assert row["train/info/team_mean"] == 10.5 and row["train/info/own_mean"] == 5.25
        assert row["train/info/a0/own_mean"] == 1.5 and row["train/info/a1/own_mean"] == 9.0
        assert "train/info/a0/team_mean" not in row and "train/info/mask_mean" not in row
        assert row["train/info/big_mean"] == 1.0  # 2 of the 4 episodes report it
        assert "train/info/step_mean" not in row and row["train/episodes"] == 4.0
        assert runner.collect(Constant()).episodes["info/team"].size == 4  # this fragment's
        stats = evaluate(env, Constant(), hidden_dim=0, seed=1)
        out = summarise_episodes("eval", stats, env.spec)
        assert out["eval/info/team_mean"] == 10.5 and out["eval/episodes"] == 2.0
    finally:
        env.close()
