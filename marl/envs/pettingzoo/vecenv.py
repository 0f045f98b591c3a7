"""The PettingZoo adapter's :class:`~marl.envs.base.VecEnv` (see :mod:`marl.envs.pettingzoo`)."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import numpy as np

from marl.envs.base import EnvSpec, VecBuffers, load_state, save_state
from marl.envs.checks import as_config, check_batch_actions, check_num_envs
from marl.envs.configs import PettingZooEnvConfig
from marl.envs.pettingzoo.group import EnvGroup
from marl.envs.pettingzoo.layout import env_seeds, inspect_env
from marl.envs.pettingzoo.resolve import build_env
from marl.envs.pettingzoo.workers import WorkerPool


class PettingZooVecEnv:
    """``num_envs`` auto-resetting copies of a PettingZoo env (a :class:`VecEnv`).

    See :mod:`marl.envs.pettingzoo` for what is supported and how outputs are laid out.
    Construction builds (and resets) one env to check it, so a bad ``cfg`` fails here
    with a ValueError naming the field. The envs are stepped in process
    (``num_workers=0``, an :class:`EnvGroup`) or by a :class:`WorkerPool`.
    """

    def __init__(self, cfg: Any = None, num_envs: int = 1, seed: int | None = None) -> None:
        self.num_envs = b = check_num_envs(num_envs)
        self.cfg = cfg = as_config(cfg, PettingZooEnvConfig)
        self._closed = False
        probe = build_env(cfg)
        try:
            self.layout = lay = inspect_env(probe, cfg, env_seeds(seed, 1)[0])
        except BaseException:
            probe.close()
            raise
        self.spec = EnvSpec(
            agents=lay.agents,
            obs_shape=lay.obs_shape,
            state_dim=lay.state_dim,
            n_actions=lay.n_actions,
            obs_dtype=lay.obs_dtype,
            has_action_mask=lay.mask_mode is not None,
            state_is_concat_obs=not lay.state_from_env,
            episode_limit=episode_limit(probe, cfg),
        )
        self.num_workers = w = min(int(cfg.num_workers), b)
        if w == 0:
            envs = [probe]
            try:
                envs += [build_env(cfg) for _ in range(b - 1)]
            except BaseException:
                for e in envs:
                    e.close()
                raise
            self._group: EnvGroup | WorkerPool = EnvGroup(
                envs, lay, VecBuffers.allocate(self.spec, b))
        else:
            probe.close()
            self._group = WorkerPool(cfg, lay, self.spec, b, w)
        self.buf = self._group.buf
        self.reset(seed)

    def reset(self, seed: int | None = None) -> VecBuffers:
        """Start a new episode in every env; ``seed`` seeds env b with env_seeds(seed, B)[b]."""
        self._check_open()
        self._group.reset(env_seeds(seed, self.num_envs))
        return self.buf

    def step(self, actions: np.ndarray) -> VecBuffers:
        """Apply ``actions`` [B, N] to every env, auto-resetting ended ones."""
        self._check_open()
        self._group.step(check_batch_actions(actions, self.spec, self.num_envs,
                                             self.buf.action_mask))
        return self.buf

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the env has been closed")

    def close(self) -> None:
        """Close the envs and stop the workers (idempotent)."""
        if not self._closed:
            self._closed = True
            self._group.close()


class ResumablePettingZooVecEnv(PettingZooVecEnv):
    """A :class:`PettingZooVecEnv` whose envs can be snapshotted (a ``ResumableVecEnv``),
    made when :func:`~marl.envs.pettingzoo.snapshot.snapshot_error` finds none."""

    def get_state(self) -> dict[str, Any]:
        """Every env's exact state (:func:`snapshot_env` bytes) and the buffers' contents."""
        self._check_open()
        try:
            envs = self._group.snapshot()
        except (pickle.PicklingError, TypeError, AttributeError) as e:
            raise NotImplementedError(
                f"env {self.cfg.id} cannot be saved for an exact resume: "
                f"{type(e).__name__}: {e}") from e
        return save_state(self, self._resume_config(), id=self.cfg.id, envs=envs)

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_state` output into this env (same config and ``num_envs``)."""
        self._check_open()
        load_state(self, "PettingZoo env", state, self._resume_config(),
                   saved_as=f"env.id={state.get('id')!r}, ")
        self._group.restore(state["envs"])

    def _resume_config(self) -> dict[str, Any]:
        """The config fields a saved state must match (num_workers may differ)."""
        out = dataclasses.asdict(self.cfg)
        out.pop("num_workers")
        return out


def episode_limit(env: Any, cfg: PettingZooEnvConfig) -> int | None:
    """The env's time limit: ``max_cycles`` (PettingZoo's usual name) or ``max_steps`` of
    the factory's kwargs, else of the unwrapped env; None when it has neither."""
    for key in ("max_cycles", "max_steps"):
        value = cfg.kwargs.get(key) if isinstance(cfg.kwargs, dict) else None
        if value is None:
            value = getattr(getattr(env, "unwrapped", env), key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None
