"""Single-agent gymnasium envs with discrete actions as one-agent envs (``player_0``).

* :class:`GymnasiumVecEnv` adapts a gymnasium ``VectorEnv`` (``Discrete`` actions, ``Box``
  observations flattened to ``(O,)``, state = observation) to the VecEnv protocol. It must
  auto-reset in ``SAME_STEP`` mode (final observation in ``infos["final_obs"]``) or not at
  all (``DISABLED``: ended envs are reset by mask). gymnasium's default ``NEXT_STEP``
  mode is refused: it spends one step per episode whose action is ignored and whose
  reward is a fake 0.
* :class:`GymnasiumParallelEnv`: any gymnasium ``Env`` with ``Discrete`` actions as a
  one-agent PettingZoo ``ParallelEnv`` whose ``state()`` is the observation.

CartPole (registry name ``cartpole``): gymnasium's numpy-vectorised ``CartPoleVectorEnv``
only implements ``NEXT_STEP``; :class:`CartPoleSameStepVectorEnv` resets ended envs within
the step with gymnasium's own draw, and :class:`CartPoleVecEnv` saves and restores its
exact state. ``vectorization="sync"`` uses a ``SyncVectorEnv`` of ``gymnasium.make(id)``
instead (any discrete-action id; slower; no exact resume). ``terminated`` = terminal
state, ``truncated`` = the ``max_steps`` time limit; termination wins when both happen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv
from gymnasium.vector import AutoresetMode, VectorEnv
from pettingzoo import ParallelEnv

from marl.envs.base import AGENT, EnvSpec, VecBuffers, load_state, save_state
from marl.envs.checks import (
    as_config,
    check_batch_actions,
    check_num_envs,
    dict_actions,
)
from marl.envs.configs import CartPoleEnvConfig

__all__ = ["CartPoleEnvConfig", "CartPoleSameStepVectorEnv", "CartPoleVecEnv",
           "GymnasiumParallelEnv", "GymnasiumVecEnv", "make_gymnasium_vec", "parallel_env"]


# ---------------------------------------------------------------------- CartPole vector env
class CartPoleSameStepVectorEnv(CartPoleVectorEnv):
    """gymnasium's ``CartPoleVectorEnv`` with ``SAME_STEP`` auto-reset.

    The parent resets an env at the ``step`` after the one that ended it (``NEXT_STEP``),
    ignoring that step's action and reporting reward 0. Here an env that ends is reset in
    the same ``step`` with the parent's own draw (uniform in ``[low, high]`` from the
    batch's ``np_random``); the returned observation is the new episode's first one and
    ``infos`` holds ``final_obs`` [B, 4] (valid where ``_final_obs`` [B] is True). Physics,
    rewards, termination and truncation are the parent's.
    """

    metadata: ClassVar[dict[str, Any]] = {
        **CartPoleVectorEnv.metadata,
        "autoreset_mode": AutoresetMode.SAME_STEP,
    }

    def step(self, action: np.ndarray):
        obs, reward, terminated, truncated, info = super().step(action)
        done = terminated | truncated
        self.prev_done[:] = False  # no deferred reset in the next step: it happens here
        if done.any():
            info = {"final_obs": obs.copy(), "_final_obs": done}
            k = int(done.sum())
            self.state[:, done] = self.np_random.uniform(low=self.low, high=self.high, size=(4, k))
            self.steps[done] = 0
            obs[done] = self.state[:, done].T.astype(np.float32)
        return obs, reward, terminated, truncated, info


# ---------------------------------------------------------------------- VecEnv adapter
class GymnasiumVecEnv:
    """A gymnasium ``VectorEnv`` as a one-agent :class:`VecEnv` (module docstring);
    ``seed`` seeds its first reset, ``close()`` closes ``vec_env``."""

    def __init__(self, vec_env: VectorEnv, seed: int | None = None) -> None:
        act = vec_env.single_action_space
        obs_space = vec_env.single_observation_space
        if not isinstance(act, spaces.Discrete):
            raise ValueError(f"GymnasiumVecEnv needs Discrete actions, got {act}")
        if not isinstance(obs_space, spaces.Box):
            raise ValueError(f"GymnasiumVecEnv needs Box observations, got {obs_space}")
        mode = vec_env.metadata.get("autoreset_mode")
        if mode not in (AutoresetMode.SAME_STEP, AutoresetMode.DISABLED):
            raise ValueError(
                f"vector env auto-reset mode {mode} is not supported: use SAME_STEP or "
                "DISABLED (NEXT_STEP wastes a step with a fake reward on every reset)"
            )
        self.vec_env = vec_env
        self.num_envs = b = int(vec_env.num_envs)
        self._same_step = mode == AutoresetMode.SAME_STEP
        self._start = int(act.start)
        obs_dim = int(np.prod(obs_space.shape))
        self.spec = EnvSpec(
            agents=(AGENT,),
            obs_shape=(obs_dim,),
            state_dim=obs_dim,
            n_actions=int(act.n),
            state_is_concat_obs=True,
            episode_limit=getattr(vec_env.spec, "max_episode_steps", None)
            if vec_env.spec is not None else None,
        )
        self.buf = VecBuffers.allocate(self.spec, b)
        self._obs = self.buf.obs[:, 0]  # [B, O] views
        self._final_obs = self.buf.final_obs[:, 0]
        self._reward = self.buf.reward[:, 0]
        self._act = np.zeros(b, np.int64)
        self.reset(seed)

    def reset(self, seed: int | None = None) -> VecBuffers:
        """Reset every env; an int ``seed`` seeds the vector env (gymnasium's convention)."""
        obs, _ = self.vec_env.reset(seed=seed)
        buf = self.buf
        self._obs[:] = np.reshape(obs, (self.num_envs, -1))
        buf.state[:] = self._obs
        buf.start_episodes()
        return buf

    def step(self, actions: np.ndarray) -> VecBuffers:
        actions = check_batch_actions(actions, self.spec, self.num_envs)
        np.add(actions[:, 0], self._start, out=self._act, casting="unsafe")
        obs, reward, terminated, truncated, info = self.vec_env.step(self._act)
        buf = self.buf
        np.copyto(buf.terminated, terminated, casting="unsafe")
        np.greater(truncated, terminated, out=buf.truncated)  # truncated and not terminated
        np.copyto(self._reward, reward, casting="unsafe")
        done = buf.terminated | buf.truncated
        b = self.num_envs
        if not done.any():
            self._obs[:] = np.reshape(obs, (b, -1))
            buf.state[:] = self._obs
            return buf
        e = np.flatnonzero(done)
        if self._same_step:
            final = info["final_obs"]
            self._final_obs[e] = np.stack([np.asarray(final[i]) for i in e]).reshape(len(e), -1)
        else:
            self._final_obs[e] = np.reshape(obs, (b, -1))[e]
            obs, _ = self.vec_env.reset(options={"reset_mask": done})
        self._obs[:] = np.reshape(obs, (b, -1))
        buf.state[:] = self._obs
        buf.final_state[e] = self._final_obs[e]
        return buf

    def close(self) -> None:
        self.vec_env.close()


class CartPoleVecEnv(GymnasiumVecEnv):
    """:class:`GymnasiumVecEnv` over the native :class:`CartPoleSameStepVectorEnv`, with
    exact save / restore (physics arrays, step counters, reset bounds, generator)."""

    vec_env: CartPoleSameStepVectorEnv
    _ARRAYS = ("state", "steps", "prev_done")

    def __init__(self, vec_env: CartPoleSameStepVectorEnv, seed: int | None = None) -> None:
        if not isinstance(vec_env, CartPoleSameStepVectorEnv):
            raise TypeError(f"CartPoleVecEnv needs a CartPoleSameStepVectorEnv, got {vec_env}")
        super().__init__(vec_env, seed=seed)

    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue exactly (see ``ResumableVecEnv``)."""
        v = self.vec_env
        return save_state(self, {"max_steps": v.max_episode_steps}, bounds=(v.low, v.high),
                          arrays={k: np.array(getattr(v, k), copy=True) for k in self._ARRAYS},
                          rng=v.np_random.bit_generator.state)

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_state` output (same ``num_envs`` and ``max_steps``)."""
        v = self.vec_env
        load_state(self, "CartPole", state, {"max_steps": v.max_episode_steps})
        for k in self._ARRAYS:
            setattr(v, k, np.array(state["arrays"][k], copy=True))
        v.low, v.high = state["bounds"]
        v.np_random.bit_generator.state = state["rng"]


def make_gymnasium_vec(cfg: Any, num_envs: int, seed: int | None = None) -> GymnasiumVecEnv:
    """The batched env of a :class:`CartPoleEnvConfig` (registry factory of ``cartpole``)."""
    cfg = as_config(cfg, CartPoleEnvConfig)
    check_num_envs(num_envs)
    if cfg.vectorization == "native":
        native = CartPoleSameStepVectorEnv(num_envs=num_envs, max_episode_steps=cfg.max_steps)
        return CartPoleVecEnv(native, seed=seed)
    vec = gymnasium.make_vec(
        cfg.id,
        num_envs=num_envs,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
        max_episode_steps=cfg.max_steps,
    )
    return GymnasiumVecEnv(vec, seed=seed)


# ---------------------------------------------------------------------- PettingZoo facade
class GymnasiumParallelEnv(ParallelEnv):
    """A gymnasium ``Env`` with ``Discrete`` actions as a one-agent PettingZoo ``ParallelEnv``.

    The agent is ``player_0``; its observation space is the env's, ``state()`` returns the
    current observation (``state_space`` is the observation space) and ``infos[player_0]``
    is the env's info dict. When termination and truncation coincide, termination wins.
    ``render()`` forwards to the env (create it with a ``render_mode``).
    """

    metadata: ClassVar[dict[str, Any]] = {"name": "gymnasium_single_agent_v0",
                                          "render_modes": ["rgb_array"], "is_parallelizable": True}

    def __init__(self, env: gymnasium.Env) -> None:
        super().__init__()
        if not isinstance(env.action_space, spaces.Discrete):
            raise ValueError(f"GymnasiumParallelEnv needs Discrete actions, got {env.action_space}")
        self.env = env
        self.render_mode = env.render_mode
        self.possible_agents = [AGENT]
        self.agents: list[str] = []
        self.observation_spaces = {AGENT: env.observation_space}
        self.action_spaces = {AGENT: spaces.Discrete(int(env.action_space.n))}
        self.state_space = env.observation_space
        self._start = int(env.action_space.start)
        self._act = np.zeros(1, np.int64)
        self._obs: Any = None

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Discrete:
        return self.action_spaces[agent]

    def state(self) -> np.ndarray:
        if self._obs is None:
            raise RuntimeError("state() called before reset()")
        return np.array(self._obs, copy=True)

    def reset(self, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._obs = obs
        self.agents = [AGENT]
        return {AGENT: np.array(obs, copy=True)}, {AGENT: dict(info)}

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise RuntimeError(
                "step() called with no live agents: the episode has ended (or reset() was "
                "never called); call reset() first"
            )
        a = dict_actions(actions, [AGENT], [AGENT], self.action_spaces[AGENT].n, self._act)[0]
        obs, reward, terminated, truncated, info = self.env.step(int(a) + self._start)
        self._obs = obs
        term = bool(terminated)
        trunc = bool(truncated) and not term
        if term or trunc:
            self.agents = []
        return (
            {AGENT: np.array(obs, copy=True)},
            {AGENT: float(reward)},
            {AGENT: term},
            {AGENT: trunc},
            {AGENT: dict(info)},
        )

    def render(self) -> Any:
        return self.env.render()

    def close(self) -> None:
        self.env.close()


def parallel_env(
    config: CartPoleEnvConfig | Mapping | None = None,
    render_mode: str | None = None,
    **kwargs: Any,
) -> GymnasiumParallelEnv:
    """One-agent PettingZoo env of a :class:`CartPoleEnvConfig` (keyword overrides allowed),
    over ``gymnasium.make(id, max_episode_steps=max_steps)``."""
    cfg = as_config(config, CartPoleEnvConfig, **kwargs)
    env = gymnasium.make(cfg.id, max_episode_steps=cfg.max_steps, render_mode=render_mode)
    return GymnasiumParallelEnv(env)
