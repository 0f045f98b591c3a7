"""A worked plugin with its own hyperparameter: a scaled one-step TD advantage.

    A^a = scale * (r_t + gamma (1 - terminated_t) V(s_{t+1}) - V(s_t))

on the centralised V-critic (central-V's critic, bootstrapped one step instead of
TD(lambda)). ``scale`` is this row's own option: the row declares a dataclass
(:class:`TD0Options`) and where its block lives (``options_key = "td0"``), and the run
sets it with ``+algo.td0.scale=...``; it is typed and checked at start like every other
option, recorded with the run, and handed to the function as ``x.options``.

``x.next_values`` are not zeroed at terminal steps (see ``AdvantageInputs``): the
function masks them itself. Run it from the repository's root::

    python -m marl.train +experiment=coma_boxpush 'plugin_path=[experiments/plugins]' \\
        algo.advantage=td0_advantage:ADVANTAGE +algo.td0.scale=0.5 algo.name=td0
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from marl.algos.coma.advantages import Advantage, AdvantageInputs
from marl.schema import check


@dataclass
class TD0Options:
    """``algo.td0``: the options of this row."""

    scale: float = 1.0
    """Factor on the TD error; > 0."""

    def __post_init__(self) -> None:
        check(self.scale > 0, "algo.td0.scale", self.scale, "must be > 0")


def scaled_td0(x: AdvantageInputs) -> tuple[Tensor, Tensor]:
    """(advantage, baseline), both ``[T, B, N]``: ``x.options.scale`` times the one-step
    TD error of the central V-critic, whose value ``V(s_t)`` is the baseline."""
    v = x.q["central_v"].squeeze(-1)
    nxt = x.next_values["central_v"].masked_fill(x.terminated, 0.0)
    return x.options.scale * (x.rewards + x.gamma * nxt - v), v


ADVANTAGE = Advantage(critics=("central_v",), fn=scaled_td0, options=TD0Options,
                      options_key="td0")
"""The row ``algo.advantage=td0_advantage:ADVANTAGE`` names."""
