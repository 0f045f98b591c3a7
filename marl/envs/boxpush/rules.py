"""Box pushing's constants (agents, actions, observation sizes, episode metrics) and
which cells the box may start on."""

from __future__ import annotations

import numpy as np

AGENTS = ("robot_0", "robot_1")
N_ACTIONS = 5
OBS_DIM = 2 + 3 * 3
STATE_DIM = 9
ACTION_MEANINGS = ("stay", "up", "down", "left", "right")
ROW8 = np.dtype((np.void, 8))  # two float32 as one opaque item, for row gathers
ROW12 = np.dtype((np.void, 12))  # three float32
# (dx, dy) of each action; y grows downwards (y = 0 is the top row).
ACTION_DELTAS = np.array([[0, 0], [0, -1], [0, 1], [-1, 0], [1, 0]], dtype=np.intp)
EPISODE_METRICS = (
    "success",
    "pushes/robot_0",
    "pushes/robot_1",
    "push_attempts/robot_0",
    "push_attempts/robot_1",
    "idle/robot_0",
    "idle/robot_1",
)


def allowed_box_cells(width: int, height: int, hole: tuple[int, int]) -> list[tuple[int, int]]:
    """Cells ``(x, y)`` where the box may start with the hole at ``hole`` (row-major order).

    A cell is allowed iff it is not the hole and it is interior or a non-corner wall cell
    on a wall line (first/last column, first/last row) that also contains the hole.
    """
    hx, hy = hole
    out = []
    for y in range(height):
        for x in range(width):
            if (x, y) == (hx, hy):
                continue
            on_x_wall = x in (0, width - 1)
            on_y_wall = y in (0, height - 1)
            if on_x_wall and on_y_wall:
                continue  # corner: the box could never move
            if on_x_wall and x != hx:
                continue  # stuck against a column wall the hole is not on
            if on_y_wall and y != hy:
                continue  # stuck against a row wall the hole is not on
            out.append((x, y))
    return out
