"""A reward-transform row from outside the package (``algo.reward.transform=
reward_scale:SCALE``, this directory in ``plugin_path``): every reward times ``factor``,
set with ``+algo.reward.plugin.factor=...``."""

from __future__ import annotations

from dataclasses import dataclass, replace

from marl.algos.rewards import RewardTransform
from marl.schema import check


@dataclass
class ScaleOptions:
    factor: float = 1.0
    """Multiplies every reward; > 0."""

    def __post_init__(self) -> None:
        check(self.factor > 0, "algo.reward.plugin.factor", self.factor, "must be > 0")


class Scale:
    def __init__(self, spec, options: ScaleOptions, seed: int):
        self.factor = options.factor

    def __call__(self, ro):
        return replace(ro, rewards=self.factor * ro.rewards), {"factor": self.factor}

    def state_dict(self):
        return {}

    def load_state_dict(self, sd):
        pass


SCALE = RewardTransform(build=Scale, options=ScaleOptions)
