"""Box pushing's look-up tables for one grid, built once: every rule of the core is then
a few ``take`` calls over the batch."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from marl.envs.boxpush.rules import ACTION_DELTAS, ROW8, ROW12, allowed_box_cells


class GridTables(NamedTuple):
    """Cells are flat indices ``y * W + x``; C = W * H."""

    move: np.ndarray  # [C * 5] target cell of (cell, action); the cell itself at a wall
    xy: np.ndarray  # [C, 2] normalised absolute position
    rel: np.ndarray  # [C * C, 3] what a robot at p sees of q: (dx, dy, visible)
    xy_v: np.ndarray  # xy rows as opaque 8-byte items (one take gathers a row)
    rel_v: np.ndarray  # rel rows as opaque 12-byte items
    box_table: np.ndarray  # [C, n_max] allowed box starts per hole cell, padded
    box_count: np.ndarray  # [C] how many of each row are real


def feature_views(obs: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, ...]:
    """Agent-major [2, k] views of the feature groups of obs [k, 2, 11], state [k, 9], as
    the opaque row items of ``xy_v`` / ``rel_v``: the targets of the core's gathers."""
    o = obs.view(np.uint8)  # [k, 2, 44]
    s = state.view(np.uint8)  # [k, 36]
    return (
        o[:, :, 0:8].view(ROW8)[..., 0].T,  # own position
        o[:, :, 8:20].view(ROW12)[..., 0].T,  # box
        o[:, :, 20:32].view(ROW12)[..., 0].T,  # hole
        o[:, :, 32:44].view(ROW12)[..., 0].T,  # other robot
        s[:, 0:32].view(ROW8),  # [k, 4] positions of robot_0, robot_1, box, hole
    )


def grid_tables(w: int, h: int, view_radius: int | None, hole: Any,
                fixed_hole: int | None) -> GridTables:
    """The tables of a ``w x h`` grid; refuses (ValueError naming ``env.hole``) a hole no
    box start can reach."""
    cells = np.arange(w * h)
    xs, ys = cells % w, cells // w
    move = _move_table(w, h, cells, xs, ys)
    xy, rel = _position_tables(w, h, view_radius, xs, ys)
    xy_v = xy.view(ROW8).ravel()
    rel_v = rel.view(ROW12).ravel()
    box_table, box_count = _box_starts(w, h, hole, fixed_hole)
    return GridTables(move, xy, rel, xy_v, rel_v, box_table, box_count)


def _move_table(w: int, h: int, cells: np.ndarray, xs: np.ndarray,
                ys: np.ndarray) -> np.ndarray:
    """Target cell of each (cell, action) at [cell * 5 + action]; the cell itself when
    the move would leave the grid."""
    nx = xs[:, None] + ACTION_DELTAS[None, :, 0]
    ny = ys[:, None] + ACTION_DELTAS[None, :, 1]
    inside = (nx >= 0) & (nx < w) & (ny >= 0) & (ny < h)
    return np.where(inside, ny * w + nx, cells[:, None]).astype(np.intp).ravel()


def _position_tables(w: int, h: int, view_radius: int | None, xs: np.ndarray,
                     ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalised absolute position of each cell ``[C, 2]``, and what a robot at cell p
    sees of an object at cell q, (dx, dy, visible) at [p * C + q]. Rows are then viewed
    as opaque 8- and 12-byte items so one `take` gathers a whole feature group."""
    c = w * h
    sx, sy = 1.0 / (w - 1), 1.0 / (h - 1)
    xy = np.ascontiguousarray(np.stack([xs * sx, ys * sy], 1), np.float32)
    dx = xs[None, :] - xs[:, None]
    dy = ys[None, :] - ys[:, None]
    r = view_radius
    vis = np.ones((c, c), bool) if r is None else np.maximum(abs(dx), abs(dy)) <= r
    rel3 = np.stack([dx * sx * vis, dy * sy * vis, vis], -1).astype(np.float32)
    return xy, np.ascontiguousarray(rel3.reshape(c * c, 3))


def _box_starts(w: int, h: int, hole: Any, fixed_hole: int | None,
                ) -> tuple[np.ndarray, np.ndarray]:
    """Allowed start cells of the box for each hole cell, padded to a rectangle
    ``[C, n_max]``, and how many of each row are real ``[C]``."""
    c = w * h
    allowed = [
        [y * w + x for x, y in allowed_box_cells(w, h, (hc % w, hc // w))] for hc in range(c)
    ]
    holes = range(c) if fixed_hole is None else [fixed_hole]
    if not all(allowed[hc] for hc in holes):
        hc = next(hc for hc in holes if not allowed[hc])
        raise ValueError(
            f"env.hole = {hole!r} is invalid on a {w}x{h} grid: with the hole at "
            f"({hc % w}, {hc // w}) no box start can reach it (every episode must be "
            "solvable); use a larger grid or another hole")
    n_max = max(len(a) for a in allowed)
    rows = [a or [hc] for hc, a in enumerate(allowed)]  # an unreachable hole is never drawn
    box_table = np.array([a + [a[0]] * (n_max - len(a)) for a in rows], np.intp)
    box_count = np.array([len(a) for a in allowed], np.float64)
    return box_table, box_count
