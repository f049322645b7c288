"""Shape outlines for the synthetic data set, as polygons in shape-local coordinates.

Every shape is one or more filled polygons: an outer outline painted with 1 and, for
rings, an inner outline painted back with 0. Polygons are rasterised with
``cv2.fillPoly`` and ``LINE_8`` (no antialiasing), so the painted pixels and the mask
are the same set by construction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

SHAPE_CLASSES: tuple[str, ...] = (
    "circle",
    "ellipse",
    "rectangle",
    "triangle",
    "star",
    "ring",
    "hexagon",
    "cross",
)
"""Class names; the class id of a shape is its index here (0-based, no background)."""

Outline = list[tuple[np.ndarray, int]]
"""Polygons ([K, 2] float x/y vertices) with the value (1 = fill, 0 = hole) to paint."""


def _regular(n: int, radius_x: float, radius_y: float, phase: float = 0.0) -> np.ndarray:
    angles = phase + np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    return np.stack([radius_x * np.cos(angles), radius_y * np.sin(angles)], axis=1)


def _round_vertices(radius: float) -> int:
    """Enough vertices that a polygon rasterises like a true circle at this radius."""
    return int(np.clip(2.0 * radius, 16, 96))


def _circle(rng: np.random.Generator, r: float) -> Outline:
    return [(_regular(_round_vertices(r), r, r), 1)]


def _ellipse(rng: np.random.Generator, r: float) -> Outline:
    # Aspect kept well below 1 so an ellipse never looks like a circle.
    aspect = rng.uniform(0.35, 0.7)
    return [(_regular(_round_vertices(r), r, r * aspect), 1)]


def _rectangle(rng: np.random.Generator, r: float) -> Outline:
    half_h = r * rng.uniform(0.3, 1.0)
    pts = np.array([[-r, -half_h], [r, -half_h], [r, half_h], [-r, half_h]])
    return [(pts, 1)]


def _triangle(rng: np.random.Generator, r: float) -> Outline:
    base = np.array([0.5, 7.0 / 6.0, 11.0 / 6.0]) * np.pi
    angles = base + rng.uniform(-0.25, 0.25, size=3)
    radii = r * rng.uniform(0.8, 1.0, size=3)
    return [(np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1), 1)]


def _star(rng: np.random.Generator, r: float) -> Outline:
    outer = _regular(5, r, r, phase=-0.5 * np.pi)
    inner_r = r * rng.uniform(0.38, 0.5)
    inner = _regular(5, inner_r, inner_r, phase=-0.5 * np.pi + np.pi / 5.0)
    pts = np.empty((10, 2))
    pts[0::2] = outer
    pts[1::2] = inner
    return [(pts, 1)]


def _ring(rng: np.random.Generator, r: float) -> Outline:
    inner_r = r * rng.uniform(0.45, 0.7)
    n = _round_vertices(r)
    return [(_regular(n, r, r), 1), (_regular(n, inner_r, inner_r), 0)]


def _hexagon(rng: np.random.Generator, r: float) -> Outline:
    return [(_regular(6, r, r), 1)]


def _cross(rng: np.random.Generator, r: float) -> Outline:
    a = r * rng.uniform(0.22, 0.36)
    pts = np.array(
        [
            [-a, -r], [a, -r], [a, -a], [r, -a], [r, a], [a, a],
            [a, r], [-a, r], [-a, a], [-r, a], [-r, -a], [-a, -a],
        ]
    )  # fmt: skip
    return [(pts, 1)]


_BUILDERS: tuple[Callable[[np.random.Generator, float], Outline], ...] = (
    _circle,
    _ellipse,
    _rectangle,
    _triangle,
    _star,
    _ring,
    _hexagon,
    _cross,
)


@dataclass
class Stamp:
    """One rasterised shape: a bool mask over the image window ``[y0:y1, x0:x1]``."""

    class_id: int
    y0: int
    x0: int
    mask: np.ndarray

    @property
    def y1(self) -> int:
        return self.y0 + self.mask.shape[0]

    @property
    def x1(self) -> int:
        return self.x0 + self.mask.shape[1]


def random_stamp(
    rng: np.random.Generator, height: int, width: int, min_size: float, max_size: float
) -> Stamp | None:
    """A random shape of random class, size, rotation and position, clipped to the image.

    ``size`` (the shape's diameter before rotation) is log-uniform in
    [min_size, max_size], so small objects are as common as large ones. The centre
    stays at least a quarter of the size inside the image so a truncated shape still
    shows enough of itself to be recognisable. Returns None when nothing is inside.
    """
    class_id = int(rng.integers(len(SHAPE_CLASSES)))
    size = float(np.exp(rng.uniform(np.log(min_size), np.log(max_size))))
    radius = size / 2.0
    outline = _BUILDERS[class_id](rng, radius)
    theta = rng.uniform(0.0, 2.0 * np.pi)
    rot = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    margin_x = min(radius / 2.0, width / 2.0)
    margin_y = min(radius / 2.0, height / 2.0)
    centre = np.array(
        [rng.uniform(margin_x, width - margin_x), rng.uniform(margin_y, height - margin_y)]
    )
    polys = [(np.rint(pts @ rot + centre).astype(np.int32), value) for pts, value in outline]
    lo = np.maximum(polys[0][0].min(axis=0), 0)
    hi = np.minimum(polys[0][0].max(axis=0) + 1, [width, height])
    if np.any(hi <= lo):
        return None
    canvas = np.zeros((int(hi[1] - lo[1]), int(hi[0] - lo[0])), dtype=np.uint8)
    for pts, value in polys:
        cv2.fillPoly(canvas, [pts - lo.astype(np.int32)], value, lineType=cv2.LINE_8)
    return Stamp(class_id=class_id, y0=int(lo[1]), x0=int(lo[0]), mask=canvas.view(bool))
