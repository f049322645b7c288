"""The exact boundary of a binary mask as closed rings, traced with numpy (no OpenCV).

Pixel ``(x, y)`` covers the square ``[x, x+1] × [y, y+1]`` (the convention of the boxes).
Every unit edge between a foreground and a background pixel becomes one directed edge with
the foreground on its right (image coordinates, y down), so exterior rings run clockwise
on screen (positive shoelace area in ``(x, y)``) and holes counter-clockwise (negative).
At a vertex where two foreground pixels touch only diagonally the walk turns left, which
joins them into one ring: foreground is 8-connected, background (holes) 4-connected, as
in OpenCV's ``findContours``.

A ring's points are the *midpoints* of its edges, not the pixel corners: a 45° staircase
then lies exactly on one straight line (no systematic loss of area when simplified), and
the polygon still contains exactly the mask's pixel centres (corners are cut by a quarter
pixel, never past a centre), so rasterising it at pixel centres gives the mask back.

The edges are linked into rings without a Python loop over pixels: each edge's successor is
looked up by its end vertex, rings are the cycles of that permutation (labelled by pointer
jumping) and each ring is put in order by list ranking, both O(E log E) in numpy.
"""

from __future__ import annotations

import numpy as np

# Directions, clockwise on screen: east, south, west, north. left(d) = d - 1, right(d) = d + 1.
_DX = np.array([1, 0, -1, 0])
_DY = np.array([0, 1, 0, -1])


def trace_rings(mask: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``mask`` bool [H, W] → (rings, inside): each ring float64 [K, 2] of (x, y) edge
    midpoints in order, collinear points removed; ``inside[i]`` is the centre of a
    foreground pixel next to ring ``i`` (which component the ring bounds)."""
    start_x, start_y, direction = _boundary_edges(np.asarray(mask, dtype=bool))
    if direction.size == 0:
        return [], []
    successor = _successors(start_x, start_y, direction, mask.shape[1] + 3)
    label, position = _cycles(successor)
    order = np.lexsort((position, label))
    mid_x = start_x[order] + 0.5 * _DX[direction[order]] - 1.0  # -1: undo the padding
    mid_y = start_y[order] + 0.5 * _DY[direction[order]] - 1.0
    cuts = np.flatnonzero(np.diff(label[order])) + 1
    rings, inside = [], []
    for xs, ys, ds in zip(
        np.split(mid_x, cuts), np.split(mid_y, cuts), np.split(direction[order], cuts), strict=True
    ):
        points = np.stack([xs, ys], axis=1)
        # the foreground pixel on the right of the ring's first edge: normal (-dy, dx)
        inside.append(points[0] + 0.5 * np.array([-_DY[ds[0]], _DX[ds[0]]]))
        rings.append(_drop_collinear(points))
    return rings, inside


def _boundary_edges(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start corner (x, y) in the 1-padded frame and direction of every boundary edge."""
    p = np.pad(mask, 1)
    above, below = p[:-1, :], p[1:, :]  # row i: the corner row y = i + 1
    left, right = p[:, :-1], p[:, 1:]  # column j: the corner column x = j + 1
    parts = []
    rows, cols = np.nonzero(below & ~above)  # east along the top of a foreground pixel
    parts.append((cols, rows + 1, 0))
    rows, cols = np.nonzero(left & ~right)  # south along the right side of one
    parts.append((cols + 1, rows, 1))
    rows, cols = np.nonzero(above & ~below)  # west along the bottom of one
    parts.append((cols + 1, rows + 1, 2))
    rows, cols = np.nonzero(right & ~left)  # north along the left side of one
    parts.append((cols + 1, rows + 1, 3))
    xs = np.concatenate([x for x, _, _ in parts]).astype(np.int64)
    ys = np.concatenate([y for _, y, _ in parts]).astype(np.int64)
    ds = np.concatenate([np.full(len(x), d, dtype=np.int64) for x, _, d in parts])
    return xs, ys, ds


def _successors(xs: np.ndarray, ys: np.ndarray, ds: np.ndarray, stride: int) -> np.ndarray:
    """The edge that follows each edge: at its end corner, turn left if an edge leaves that
    way (only possible at a diagonal touch: 8-connected foreground), else go straight,
    else turn right. Exactly one of the three leaves any other corner."""
    keys = (ys * stride + xs) * 4 + ds
    order = np.argsort(keys)
    sorted_keys = keys[order]
    end = (ys + _DY[ds]) * stride + (xs + _DX[ds])
    successor = np.full(len(xs), -1, dtype=np.int64)
    for turn in (-1, 0, 1):  # left, straight, right: the first that exists wins
        wanted = end * 4 + (ds + turn) % 4
        at = np.minimum(np.searchsorted(sorted_keys, wanted), len(sorted_keys) - 1)
        found = (sorted_keys[at] == wanted) & (successor < 0)
        successor[found] = order[at[found]]
    if (successor < 0).any():  # cannot happen for a closed boundary
        raise AssertionError("open boundary while tracing a mask")
    return successor


def _cycles(successor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(label, position) of each edge: label = the smallest edge index of its cycle,
    position = steps from that edge along the cycle."""
    count = len(successor)
    rounds = max(1, int(np.ceil(np.log2(count))) + 1)
    label = np.arange(count)
    jump = successor.copy()
    for _ in range(rounds):  # after k rounds: the minimum over the next 2**k edges
        label = np.minimum(label, label[jump])
        jump = jump[jump]
    leader = label == np.arange(count)
    # list ranking: distance from each edge forward to its cycle's leader
    distance = np.where(leader, 0, 1)
    pointer = np.where(leader, np.arange(count), successor)
    for _ in range(rounds):
        distance = distance + distance[pointer]
        pointer = pointer[pointer]
    length = np.bincount(label, minlength=count)[label]
    return label, (length - distance) % length


def _drop_collinear(points: np.ndarray) -> np.ndarray:
    """Keep only the points where the ring changes direction."""
    before = points - np.roll(points, 1, axis=0)
    after = np.roll(points, -1, axis=0) - points
    turn = before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0]
    return points[turn != 0]


def signed_area(ring: np.ndarray) -> float:
    """Shoelace area in (x, y) with y down: > 0 for exteriors, < 0 for holes."""
    x, y = ring[:, 0], ring[:, 1]
    return float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)) / 2.0


def contains(ring: np.ndarray, point: np.ndarray) -> bool:
    """Even-odd test of ``point`` against ``ring`` (never on it, for the points used here)."""
    x, y = ring[:, 0], ring[:, 1]
    nx, ny = np.roll(x, -1), np.roll(y, -1)
    px, py = float(point[0]), float(point[1])
    spans = (y > py) != (ny > py)
    with np.errstate(divide="ignore", invalid="ignore"):
        cross_x = x + (py - y) * (nx - x) / (ny - y)
    return bool(np.count_nonzero(spans & (cross_x > px)) % 2)
