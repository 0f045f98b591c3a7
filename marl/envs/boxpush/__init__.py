"""Two-robot box pushing: a cooperative gridworld where two robots push one box into a hole.

Layout. A ``width x height`` grid (default 5x5) surrounded by walls. Coordinates are
``(x, y)`` with ``x`` the column ``0..W-1`` and ``y`` the row ``0..H-1``; ``y = 0`` is the
TOP row. There is one box, one hole and two robots, ``robot_0`` and ``robot_1``. Robots
may share a cell with each other, never with the box.

Actions. ``Discrete(5)`` per robot: 0 stay, 1 up (``y-1``), 2 down (``y+1``), 3 left
(``x-1``), 4 right (``x+1``). Both robots act simultaneously.

Pushing. A robot *pushes* in direction ``d`` when its target cell (position + ``d``) is
the box's cell, i.e. it stands next to the box on the side opposite ``d`` and takes
action ``d``. Box resolution, with ``P_d`` the number of robots pushing in direction ``d``:

* robots pushing in two different directions in the same step conflict and the box does
  not move. This covers opposite pushes (which cancel) and also perpendicular pushes:
  the box never moves diagonally and never picks one of two directions;
* otherwise, with pushers only in direction ``d``: if ``P_d >= box_weight`` the box moves;
  if ``0 < P_d < box_weight`` it moves with probability ``solo_push_prob``. In both cases
  only if the destination cell (box + ``d``) is inside the grid and not occupied, at the
  start of the step, by a robot that is not pushing.

Robots. Pushers follow the box into its old cell when it moves and stay put when it does
not. A non-pushing robot moves to its target unless the target is outside the grid (a
wall) or is the box's cell after the box resolution, in which case it stays put. Two
robots may move into the same cell.

Reward and episode end. When the box enters the hole both robots get reward 1 and the
episode terminates (``terminated=True``). Every step also pays ``-step_penalty`` to both
robots (default 0). The episode is truncated (``truncated=True, terminated=False``)
after ``max_steps`` steps unless it terminated first; termination wins when both happen
on the same step.

Hole. ``hole`` is a fixed cell ``[x, y]`` (``None`` = middle of the top row,
``(W // 2, 0)``) or the string ``"random"``: a uniformly random cell (any cell, corners
included) drawn anew each episode.

Initial positions. Every episode is solvable. A box in a corner can never move again and
a box against a wall can only slide along that wall, so the box starts on a cell that is
not the hole and is either interior or a non-corner wall cell on the same wall line as
the hole (same ``x == 0`` / ``x == W-1`` column or ``y == 0`` / ``y == H-1`` row as the
hole; a hole in a corner lies on two wall lines). On the default 5x5 grid with the hole
at ``(2, 0)`` these are the 9 interior cells plus ``(1, 0)`` and ``(3, 0)``. The box is
drawn uniformly among the allowed cells, then each robot uniformly and independently
among the cells other than the box's (robots may start on the hole or on one cell).

Observation of each robot (float32, length 11, in ``[-1, 1]``): its own position
normalised, ``(x / (W-1), y / (H-1))``; then for the box, the hole and the other robot,
in this order, the relative position ``((px - x) / (W-1), (py - y) / (H-1))`` and a
visibility flag (1.0 = visible). With ``view_radius`` set, an object is visible iff its
Chebyshev distance to the robot is ``<= view_radius``; an unseen object has its relative
position zeroed and flag 0. ``view_radius=None`` makes everything visible.

Global state (float32, length 9, in ``[0, 1]``): normalised absolute positions of
``robot_0``, ``robot_1``, the box and the hole (``x / (W-1), y / (H-1)`` each), then
``t / max_steps``.

Episode statistics: ``success`` (1.0 if the box reached the hole) and, per agent,
``pushes/<agent>`` (steps in which the agent pushed AND the box moved),
``push_attempts/<agent>`` (steps in which it pushed) and ``idle/<agent>`` (steps in
which its position did not change). The batched core reports them in
``VecBuffers.episode`` for the envs that ended in a step; the PettingZoo env reports the
running counts of the current episode in ``infos[agent]``.

:class:`BoxPushCore` is the batched numpy core the runner uses, :class:`BoxPushEnv` its
PettingZoo front end (:mod:`marl.envs.parallel`) over one env without auto-reset.
"""

from marl.envs.boxpush.core import BoxPushCore
from marl.envs.boxpush.env import BoxPushEnv, parallel_env
from marl.envs.boxpush.metrics import credit_metrics
from marl.envs.boxpush.render import COLOURS, render_ansi, render_rgb
from marl.envs.boxpush.rules import (
    ACTION_DELTAS,
    ACTION_MEANINGS,
    AGENTS,
    EPISODE_METRICS,
    N_ACTIONS,
    OBS_DIM,
    STATE_DIM,
    allowed_box_cells,
)
from marl.envs.configs import BoxPushConfig

__all__ = [
    "ACTION_DELTAS", "ACTION_MEANINGS", "AGENTS", "COLOURS", "EPISODE_METRICS", "N_ACTIONS",
    "OBS_DIM", "STATE_DIM", "BoxPushConfig", "BoxPushCore", "BoxPushEnv", "allowed_box_cells",
    "credit_metrics", "parallel_env", "render_ansi", "render_rgb",
]
