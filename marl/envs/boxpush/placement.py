"""Where box pushing's pieces stand: the draw of a new episode's start (the rules of
*Initial positions* in :mod:`marl.envs.boxpush`) and the checked placement of
:meth:`~marl.envs.boxpush.core.BoxPushCore.set_positions`.

Inside the core, cells are flat indices ``y * W + x``; at the API they are ``(x, y)``
pairs. The functions here convert between the two and hold no state: the core keeps the
arrays and the generator.
"""

from __future__ import annotations

import numpy as np


def draw_starts(rng: np.random.Generator, k: int, n_cells: int, fixed_hole: int | None,
                box_table: np.ndarray, box_count: np.ndarray,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fresh cells for ``k`` episodes: (robots ``[2, k]``, box ``[k]``, hole ``[k]``).

    The hole is ``fixed_hole`` or uniform over the grid; the box uniform over the allowed
    starts of its hole (``box_table`` rows, ``box_count`` of each real); each robot
    uniform over the cells other than the box's."""
    hole = rng.integers(0, n_cells, k) if fixed_hole is None else np.full(k, fixed_hole, np.intp)
    u = rng.random((3, k))
    # floor(u * n) < n for u < 1 in float64, so these indices are always in range.
    box = box_table[hole, (u[0] * box_count[hole]).astype(np.intp)]
    robots = (u[1:] * (n_cells - 1)).astype(np.intp)
    robots += robots >= box  # skip the box's cell
    return robots, box, hole


def _check_on_grid(name: str, arr: np.ndarray, shape: tuple[int, ...], w: int, h: int) -> None:
    """ValueError unless ``arr`` is an int array of ``shape`` whose (x, y) cells are on
    the ``w x h`` grid."""
    if arr.shape != shape or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"{name} must be an int array of shape {shape}, got {arr.dtype} {arr.shape}"
        )
    x, y = arr[..., 0], arr[..., 1]
    if ((x < 0) | (x >= w) | (y < 0) | (y >= h)).any():
        raise ValueError(f"{name} has a cell outside the {w}x{h} grid: {arr.tolist()}")


def placed_cells(robots, box, hole, t, b: int, w: int, h: int, max_steps: int,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The checked flat cells of an explicit placement of ``b`` envs on a ``w x h`` grid:
    (robots ``[2, B]``, box ``[B]``, hole ``[B]``, t ``[B]``).

    ``robots`` [B, 2, 2], ``box`` [B, 2], ``hole`` [B, 2] hold ``(x, y)`` cells; ``t``
    (scalar or [B]) is the step counter, in ``0..max_steps-1``. Raises ValueError for
    cells outside the grid, a robot on the box or the box already in the hole."""
    robots = np.asarray(robots)
    box = np.asarray(box)
    hole = np.asarray(hole)
    t = np.broadcast_to(np.asarray(t), (b,))
    _check_on_grid("robots", robots, (b, 2, 2), w, h)
    _check_on_grid("box", box, (b, 2), w, h)
    _check_on_grid("hole", hole, (b, 2), w, h)
    if not np.issubdtype(t.dtype, np.integer) or ((t < 0) | (t >= max_steps)).any():
        raise ValueError(f"t must be ints in 0..{max_steps - 1}, got {t.tolist()}")
    rob_c = robots[..., 1] * w + robots[..., 0]
    box_c = box[:, 1] * w + box[:, 0]
    hole_c = hole[:, 1] * w + hole[:, 0]
    if (rob_c == box_c[:, None]).any():
        raise ValueError("a robot cannot stand on the box's cell")
    if (box_c == hole_c).any():
        raise ValueError("the box cannot start in the hole")
    return rob_c.T, box_c, hole_c, t


def xy_of(cells: np.ndarray, w: int) -> np.ndarray:
    """Flat cells ``[...]`` as ``(x, y)`` pairs ``[..., 2]`` on a grid ``w`` wide."""
    return np.stack([cells % w, cells // w], -1)
