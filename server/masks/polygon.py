"""COCO RLE masks → polygons with holes (``mask_format=polygon``).

:class:`PolygonMask` holds them; the JSON shape (``maskserve.result_json``), one per
detection::

    {"type": "polygon", "size": [H, W],
     "polygons": [{"exterior": [x1, y1, x2, y2, ...], "holes": [[x1, y1, ...], ...]}, ...]}

One entry per 8-connected part of the mask; each ring is a flat list as in COCO's polygon
``segmentation`` (the last point is not repeated), in pixel coordinates where pixel
``(x, y)`` covers ``[x, x+1] × [y, y+1]``. Exteriors run clockwise on screen, holes
counter-clockwise. ``pycocotools.mask.frPyObjects`` rasterises a ring as it is; a part is
its exterior minus its holes, the mask the union of its parts. See ``polygon_trace``.

Rings are simplified with Douglas–Peucker: no point of the traced boundary lies farther
than ``tolerance`` pixels from the simplified ring, nor farther than 3 % of the ring's
size (√area: parts under ~33 × 33 px are simplified less). A ring that simplification
would flatten (fewer than 3 points, or its area's sign lost) is kept unsimplified.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maskserve.masks.polygon_trace import contains, signed_area, trace_rings
from maskserve.masks.rle import Rle

DEFAULT_TOLERANCE = 1.0
#: A ring is simplified by at most this fraction of its size (the square root of its
#: area): a part of a few dozen pixels would otherwise lose its shape to a 1 px tolerance.
RELATIVE_TOLERANCE = 0.03


@dataclass(frozen=True)
class PolygonPart:
    """One 8-connected part: its exterior ring and its holes, flat ``x, y`` lists."""

    exterior: tuple[float, ...]
    holes: tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class PolygonMask:
    height: int
    width: int
    parts: tuple[PolygonPart, ...]


def polygons_of(rle: Rle, tolerance: float = DEFAULT_TOLERANCE) -> PolygonMask:
    """A mask's polygons (see the module docstring), decoded only inside its bounding box."""
    window = _window(rle.run_lengths(), rle.height)
    parts: list[PolygonPart] = []
    if window is not None:
        pixels, x0, y0 = window
        offset = np.array([x0, y0], dtype=np.float64)
        for exterior, holes in mask_polygons(pixels, tolerance):
            parts.append(
                PolygonPart(_flat(exterior + offset), tuple(_flat(h + offset) for h in holes))
            )
    return PolygonMask(rle.height, rle.width, tuple(parts))


def mask_polygons(
    mask: np.ndarray, tolerance: float = DEFAULT_TOLERANCE
) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """bool [H, W] → [(exterior [K, 2], [hole [K, 2], ...]), ...], exteriors by area,
    largest first; coordinates as described in the module docstring."""
    rings, inside = trace_rings(mask)
    areas = [signed_area(ring) for ring in rings]
    exteriors = sorted((i for i, a in enumerate(areas) if a > 0), key=lambda i: -areas[i])
    holes: dict[int, list[int]] = {i: [] for i in exteriors}
    for i, area in enumerate(areas):
        if area < 0:
            holes[_owner(i, inside[i], rings, exteriors, areas)].append(i)
    return [
        (
            simplify_ring(rings[i], tolerance),
            [simplify_ring(rings[h], tolerance) for h in holes[i]],
        )
        for i in exteriors
    ]


def _owner(
    hole: int, point: np.ndarray, rings: list[np.ndarray], exteriors: list[int], areas: list[float]
) -> int:
    """The exterior of the part the hole is cut from: the smallest exterior containing a
    foreground pixel next to the hole (larger ones may contain it too, around a hole
    of theirs that this part sits in)."""
    for i in reversed(exteriors):  # smallest first
        if contains(rings[i], point):
            return i
    raise AssertionError(f"hole {hole} lies in no exterior")


def simplify_ring(ring: np.ndarray, tolerance: float) -> np.ndarray:
    """Douglas–Peucker on a closed ring, anchored at its first point and the point
    farthest from it, to ``tolerance`` but at most :data:`RELATIVE_TOLERANCE` of the
    ring's size; the ring itself where that would flatten it."""
    tolerance = min(tolerance, RELATIVE_TOLERANCE * abs(signed_area(ring)) ** 0.5)
    if tolerance <= 0 or len(ring) <= 4:
        return ring
    far = int(np.argmax(((ring - ring[0]) ** 2).sum(axis=1)))
    closed = np.concatenate([ring, ring[:1]])
    keep = np.zeros(len(closed), dtype=bool)
    keep[[0, far, len(ring)]] = True
    while _split_once(closed, keep, tolerance):
        pass
    simplified = ring[keep[:-1]]
    if len(simplified) < 3 or signed_area(simplified) * signed_area(ring) <= 0:
        return ring
    return simplified


def _split_once(points: np.ndarray, keep: np.ndarray, tolerance: float) -> bool:
    """One level of Douglas–Peucker for every segment between kept points at once: keep
    each segment's farthest point where it lies beyond ``tolerance``. False when none does."""
    index = np.arange(len(points))
    first = np.maximum.accumulate(np.where(keep, index, 0))
    last = np.minimum.accumulate(np.where(keep, index, len(points) - 1)[::-1])[::-1]
    a, b = points[first], points[last]
    ab = b - a
    length2 = (ab**2).sum(axis=1)
    t = np.clip(((points - a) * ab).sum(axis=1) / np.where(length2 > 0, length2, 1.0), 0.0, 1.0)
    distance = np.sqrt(((points - a - t[:, None] * ab) ** 2).sum(axis=1))
    distance[keep] = -1.0
    order = np.lexsort((-distance, first))  # per segment, the farthest point first
    heads = order[np.r_[True, first[order][1:] != first[order][:-1]]]
    split = heads[distance[heads] > tolerance]
    keep[split] = True
    return split.size > 0


def _window(runs: np.ndarray, height: int) -> tuple[np.ndarray, int, int] | None:
    """The mask's foreground decoded only inside its bounding box: (bool [h, w], x0, y0),
    None when empty. Runs are column-major, starting with background."""
    runs = np.asarray(runs, dtype=np.int64)
    ends = np.cumsum(runs)
    starts = (ends - runs)[1::2]
    ends = ends[1::2]
    nonempty = ends > starts
    starts, ends = starts[nonempty], ends[nonempty]
    if starts.size == 0:
        return None
    col0, col1 = int(starts[0] // height), int((ends[-1] - 1) // height)
    offset = col0 * height
    step = np.zeros((col1 - col0 + 1) * height + 1, dtype=np.int8)
    step[starts - offset] = 1  # runs are sorted and never touch: no index repeats
    step[ends - offset] = -1
    strip = (np.cumsum(step[:-1]) > 0).reshape(col1 - col0 + 1, height).T
    rows = np.flatnonzero(strip.any(axis=1))
    return strip[rows[0] : rows[-1] + 1], col0, int(rows[0])


def _flat(ring: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in ring.ravel())
