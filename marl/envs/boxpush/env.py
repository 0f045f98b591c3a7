"""The PettingZoo front end of box pushing: :class:`BoxPushEnv`, the batched core with
B = 1 and no auto-reset (:mod:`marl.envs.parallel`)."""


from typing import Any, ClassVar

import numpy as np

from marl.envs.boxpush.core import BoxPushCore
from marl.envs.boxpush.render import render_ansi, render_rgb
from marl.envs.checks import as_config
from marl.envs.configs import BoxPushConfig
from marl.envs.parallel import CoreParallelEnv


class BoxPushEnv(CoreParallelEnv):
    """PettingZoo ``ParallelEnv`` of box pushing: a :class:`BoxPushCore` with one env.

    ``BoxPushEnv(config, render_mode, **overrides)``: keyword overrides replace config
    fields, e.g. ``BoxPushEnv(box_weight=1)``. ``infos[agent]`` holds the running counts
    ``pushes``, ``push_attempts``, ``idle`` of that agent and ``success`` for the episode.
    """

    metadata: ClassVar[dict[str, Any]] = {"name": "boxpush_v0", "is_parallelizable": True,
                                          "render_modes": ["rgb_array", "ansi"]}
    obs_bounds = (-1.0, 1.0)

    def __init__(
        self, config: BoxPushConfig | None = None, render_mode: str | None = None, **kwargs: Any
    ) -> None:
        cfg = as_config(config, BoxPushConfig, **kwargs)
        super().__init__(BoxPushCore(cfg, num_envs=1, autoreset=False), cfg, render_mode)

    def _infos(self) -> dict[str, dict[str, Any]]:
        counts = self.core.counts(0)
        success = self._ended and bool(self.core.buf.terminated[0])
        return {a: {**counts[a], "success": success} for a in self.possible_agents}

    def _render(self) -> np.ndarray | str:
        p = self.core.positions()
        args = (self.config.width, self.config.height, p["robots"][0], p["box"][0], p["hole"][0])
        if self.render_mode == "rgb_array":
            return render_rgb(*args)
        return render_ansi(*args, int(p["t"][0]), self.config.max_steps)


parallel_env = BoxPushEnv  # PettingZoo-style factory: parallel_env(render_mode=..., box_weight=1)
