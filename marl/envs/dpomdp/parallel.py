"""The PettingZoo front end of the Dec-POMDP env: :class:`DPOMDPEnv`, the batched core
with B = 1 and no auto-reset (:mod:`marl.envs.parallel`)."""

from __future__ import annotations

from typing import Any, ClassVar

from gymnasium import spaces

from marl.envs.checks import as_config
from marl.envs.dpomdp.config import DPOMDPEnvConfig
from marl.envs.dpomdp.core import DPOMDPCore
from marl.envs.parallel import CoreParallelEnv


class DPOMDPEnv(CoreParallelEnv):
    """PettingZoo ``ParallelEnv`` of a Dec-POMDP: a :class:`DPOMDPCore` with one env.

    ``DPOMDPEnv(config, render_mode, **overrides)``: keyword overrides replace config
    fields, e.g. ``DPOMDPEnv(problem="recycling", horizon=4)``. Agent i's action space is
    ``Discrete(|A_i|)``. ``infos[agent]`` holds ``team_return`` once the episode ended;
    ``render()`` (``"ansi"``) names the step, the hidden state and the last joint
    observation.
    """

    metadata: ClassVar[dict[str, Any]] = {"name": "dpomdp_v0", "render_modes": ["ansi"],
                                          "is_parallelizable": True}

    def __init__(
        self, config: DPOMDPEnvConfig | None = None, render_mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        cfg = as_config(config, DPOMDPEnvConfig, **kwargs)
        super().__init__(DPOMDPCore(cfg, num_envs=1, autoreset=False), cfg, render_mode)
        model = self.core.model
        self.action_spaces = {a: spaces.Discrete(k)
                              for a, k in zip(self.possible_agents, model.n_actions, strict=True)}

    def _render(self) -> str:
        core = self.core
        m = core.model
        jo = core._jo[0]
        seen = "none" if jo < 0 else m.joint_obs_name(int(jo))
        return (f"{m.name} t={int(core._t[0])}/{core.horizon} "
                f"state={m.states[int(core._s[0])]} last joint observation={seen}\n")


parallel_env = DPOMDPEnv  # PettingZoo-style factory: parallel_env(problem="dectiger", horizon=3)
