"""Masks as polygons (``mask_format="polygon"``), and their rasterisation with numpy.

A mask is the union of its parts, each an exterior ring minus its hole rings; a ring is a
flat ``[x1, y1, x2, y2, ...]`` list as in COCO, in pixels where pixel ``(x, y)`` covers
``[x, x+1] × [y, y+1]``. :meth:`PolygonMask.decode` fills the pixels whose centres lie
inside (even-odd over all rings, so a hole and an island in it come out right); for the
server's exact rings (``polygon_tolerance=0``) that is the RLE mask, pixel for pixel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Ring = tuple[float, ...]


@dataclass(frozen=True)
class Polygon:
    """One 8-connected part of a mask."""

    exterior: Ring
    holes: tuple[Ring, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"exterior": list(self.exterior), "holes": [list(h) for h in self.holes]}


@dataclass(frozen=True)
class PolygonMask:
    height: int
    width: int
    polygons: tuple[Polygon, ...]

    def decode(self) -> np.ndarray:
        """bool [H, W]: the pixels whose centres the rings enclose."""
        rings = [r for p in self.polygons for r in (p.exterior, *p.holes)]
        return rasterise(rings, self.height, self.width)

    def area(self) -> int:
        return int(self.decode().sum())

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "polygon",
            "size": [self.height, self.width],
            "polygons": [p.to_json() for p in self.polygons],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PolygonMask:
        height, width = data["size"]
        parts = tuple(
            Polygon(
                exterior=tuple(float(v) for v in part["exterior"]),
                holes=tuple(tuple(float(v) for v in hole) for hole in part.get("holes", ())),
            )
            for part in data.get("polygons", ())
        )
        return cls(height=int(height), width=int(width), polygons=parts)


def rasterise(rings: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """Even-odd scanline fill at pixel centres of flat rings → bool [H, W]."""
    rows, xs = [], []
    for ring in rings:
        points = np.asarray(ring, dtype=np.float64).reshape(-1, 2)
        if len(points) < 3:
            continue
        row, x = _crossings(points)
        rows.append(row)
        xs.append(x)
    mask = np.zeros((height, width + 1), dtype=np.int32)
    if rows:
        row, x = np.concatenate(rows), np.concatenate(xs)
        order = np.lexsort((x, row))
        row, x = row[order], x[order]  # every row holds an even number of crossings
        first = np.clip(np.ceil(x[0::2] - 0.5), 0, width).astype(np.int64)
        last = np.clip(np.ceil(x[1::2] - 0.5), 0, width).astype(np.int64)
        inside = (row[0::2] >= 0) & (row[0::2] < height)
        np.add.at(mask, (row[0::2][inside], first[inside]), 1)
        np.add.at(mask, (row[0::2][inside], last[inside]), -1)
    return np.cumsum(mask, axis=1)[:, :width] > 0


def _crossings(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, x) where each edge crosses a row's centre line y = row + 0.5 (half-open in y,
    so a vertex on a centre line counts once)."""
    x0, y0 = points[:, 0], points[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    start = np.ceil(np.minimum(y0, y1) - 0.5).astype(np.int64)
    stop = np.ceil(np.maximum(y0, y1) - 0.5).astype(np.int64)
    count = np.maximum(stop - start, 0)
    edge = np.repeat(np.arange(len(points)), count)
    row = start[edge] + np.arange(edge.size) - np.repeat(np.cumsum(count) - count, count)
    centre = row + 0.5
    x = x0[edge] + (centre - y0[edge]) * (x1[edge] - x0[edge]) / (y1[edge] - y0[edge])
    return row, x
