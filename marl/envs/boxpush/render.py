"""Pictures of a box-pushing state: an RGB grid image and an ANSI text board."""

from __future__ import annotations

import numpy as np

from marl.envs.boxpush.rules import AGENTS

_CELL = 32
COLOURS = {
    "wall": (70, 70, 80),
    "floor": (225, 225, 215),
    "grid": (190, 190, 180),
    "hole": (25, 25, 30),
    "box": (140, 90, 40),
    "robot_0": (40, 110, 230),
    "robot_1": (230, 70, 40),
}


def render_rgb(width: int, height: int, robots, box, hole, cell: int = _CELL) -> np.ndarray:
    """A uint8 image [(H+2)*cell, (W+2)*cell, 3] of one layout given as (x, y) cells.

    Walls form a one-cell border, the hole is a dark cell, the box a brown square, and the
    robots blue (robot_0) and red (robot_1) discs; robots sharing a cell are drawn as two
    half-size discs side by side.
    """
    img = np.empty(((height + 2) * cell, (width + 2) * cell, 3), np.uint8)
    img[:] = COLOURS["wall"]
    img[cell:-cell, cell:-cell] = COLOURS["floor"]
    img[cell:-cell:cell, cell:-cell] = COLOURS["grid"]
    img[cell:-cell, cell:-cell:cell] = COLOURS["grid"]

    def box_at(x: int, y: int, margin: int, colour) -> None:
        x0, y0 = (x + 1) * cell + margin, (y + 1) * cell + margin
        img[y0 : y0 + cell - 2 * margin, x0 : x0 + cell - 2 * margin] = colour

    def disc(cx: float, cy: float, radius: float, colour) -> None:
        yy, xx = np.ogrid[: img.shape[0], : img.shape[1]]
        img[(xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= radius**2] = colour

    box_at(int(hole[0]), int(hole[1]), 1, COLOURS["hole"])
    box_at(int(box[0]), int(box[1]), cell // 8, COLOURS["box"])
    (x0, y0), (x1, y1) = (int(v) for v in robots[0]), (int(v) for v in robots[1])
    if (x0, y0) == (x1, y1):
        cy = (y0 + 1.5) * cell
        disc((x0 + 1.28) * cell, cy, cell * 0.22, COLOURS["robot_0"])
        disc((x0 + 1.72) * cell, cy, cell * 0.22, COLOURS["robot_1"])
    else:
        for i, (x, y) in enumerate(((x0, y0), (x1, y1))):
            disc((x + 1.5) * cell, (y + 1.5) * cell, cell * 0.35, COLOURS[AGENTS[i]])
    return img


def render_ansi(width: int, height: int, robots, box, hole, t: int, max_steps: int) -> str:
    """A text picture of one layout: ``#`` walls, ``.`` floor, ``O`` hole, ``B`` box,
    ``0`` / ``1`` robots, ``2`` both robots on one cell; then a line ``t=<t>/<max_steps>``.

    Robots are drawn over the hole, and the box over the hole (once it is in it).
    """
    grid = [["." for _ in range(width)] for _ in range(height)]
    grid[int(hole[1])][int(hole[0])] = "O"
    grid[int(box[1])][int(box[0])] = "B"
    r0 = (int(robots[0][0]), int(robots[0][1]))
    r1 = (int(robots[1][0]), int(robots[1][1]))
    if r0 == r1:
        grid[r0[1]][r0[0]] = "2"
    else:
        grid[r0[1]][r0[0]] = "0"
        grid[r1[1]][r1[0]] = "1"
    border = "#" * (width + 2)
    lines = [border] + ["#" + "".join(row) + "#" for row in grid] + [border]
    lines.append(f"t={t}/{max_steps}")
    return "\n".join(lines) + "\n"
