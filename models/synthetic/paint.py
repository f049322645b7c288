"""Fills for shapes, cluttered backgrounds and distractors (everything that is not a mask).

All drawing uses ``LINE_8`` (no antialiasing) and every random choice comes from the
caller's generator, so an image is a pure function of the generator state.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

_PHOTO_PATH = Path(__file__).resolve().parent / "assets" / "coffee.png"
_MIN_CONTRAST = 60.0
"""Smallest RGB distance between a shape's base colour and the background under it."""


@lru_cache(maxsize=1)
def background_photo() -> np.ndarray:
    """The bundled CC0 photo as a read-only RGB uint8 [H, W, 3] array (loaded once)."""
    bgr = cv2.imread(str(_PHOTO_PATH), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"background photo missing: {_PHOTO_PATH}")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    rgb.setflags(write=False)
    return rgb


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=3).astype(np.float32)


def _projection(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Pixel coordinates projected on a random direction, [H, W] float32."""
    theta = rng.uniform(0.0, 2.0 * np.pi)
    ys = np.arange(height, dtype=np.float32)[:, None] * np.float32(np.sin(theta))
    xs = np.arange(width, dtype=np.float32)[None, :] * np.float32(np.cos(theta))
    return ys + xs


def _ramp(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A linear 0→1 ramp along a random direction, [H, W, 1] float32."""
    proj = _projection(rng, height, width)
    low = proj.min()
    return ((proj - low) / max(float(proj.max() - low), 1.0))[..., None]


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Uniform noise in [-1, 1] drawn on a grid of ``cell`` px and upsampled, [H, W, 3]."""
    small = rng.uniform(-1.0, 1.0, size=(-(-height // cell), -(-width // cell), 3))
    if cell == 1:
        return small.astype(np.float32)
    return cv2.resize(small.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


def shape_fill(rng: np.random.Generator, height: int, width: int, avoid: np.ndarray) -> np.ndarray:
    """A [H, W, 3] uint8 fill: solid, two-colour stripes, noise-textured or gradient.

    The base colour is redrawn (a few times) while it is within ``_MIN_CONTRAST`` of
    ``avoid`` (the mean background colour under the shape) so shapes rarely vanish.
    """
    base = _colour(rng)
    for _ in range(4):
        if float(np.linalg.norm(base - avoid)) >= _MIN_CONTRAST:
            break
        base = _colour(rng)
    kind = int(rng.integers(4))
    if kind == 0:
        return np.broadcast_to(base.astype(np.uint8), (height, width, 3))
    if kind == 1:
        period = rng.uniform(3.0, 12.0)
        band = (np.floor(_projection(rng, height, width) / period).astype(np.int32) & 1) == 1
        return np.where(band[..., None], base, _colour(rng)).astype(np.uint8)
    if kind == 2:
        cell = int(rng.choice([1, 2, 4]))
        amp = rng.uniform(20.0, 70.0)
        fill = base + amp * _smooth_noise(rng, height, width, cell)
    else:
        fill = base + _ramp(rng, height, width) * (_colour(rng) - base)
    return np.clip(fill, 0, 255).astype(np.uint8)


def _photo_crop(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    photo = background_photo()
    ph, pw = photo.shape[:2]
    scale = rng.uniform(0.25, 1.0)
    ch = max(8, int(ph * scale))
    cw = max(8, min(pw, int(ch * width / height * rng.uniform(0.8, 1.25))))
    y = int(rng.integers(0, ph - ch + 1))
    x = int(rng.integers(0, pw - cw + 1))
    crop = photo[y : y + ch, x : x + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    out = cv2.resize(np.ascontiguousarray(crop), (width, height), interpolation=cv2.INTER_LINEAR)
    gain = rng.uniform(0.6, 1.3)
    return np.clip(out.astype(np.float32) * gain, 0, 255)


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A cluttered RGB uint8 [H, W, 3] background: noise, gradient or a photo crop."""
    kind = int(rng.integers(3))
    if kind == 0:
        cell = int(rng.choice([1, 2, 4, 8, 16, 32]))
        amp = rng.uniform(30.0, 127.0)
        img = _colour(rng) + amp * _smooth_noise(rng, height, width, cell)
    elif kind == 1:
        c0 = _colour(rng)
        img = c0 + _ramp(rng, height, width) * (_colour(rng) - c0)
        if rng.random() < 0.5:
            img = img + rng.uniform(5.0, 25.0) * _smooth_noise(rng, height, width, 1)
    else:
        img = _photo_crop(rng, height, width)
    return np.clip(img, 0, 255).astype(np.uint8)


def _blob(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """An irregular closed outline (several random harmonics), unlike any shape class."""
    radius = rng.uniform(6.0, min(height, width) / 5.0)
    angles = np.linspace(0.0, 2.0 * np.pi, 40, endpoint=False)
    wobble = np.ones_like(angles)
    for k in (2, 3, 5):
        wobble += rng.uniform(0.12, 0.3) * np.sin(k * angles + rng.uniform(0, 2 * np.pi))
    centre = rng.uniform([0.0, 0.0], [width, height])
    pts = centre + (radius * wobble)[:, None] * np.stack([np.cos(angles), np.sin(angles)], 1)
    return np.rint(pts).astype(np.int32)


def add_distractors(rng: np.random.Generator, image: np.ndarray) -> None:
    """Paints 0..6 lines, scribbles and blobs in place; they are never instances."""
    height, width = image.shape[:2]
    for _ in range(int(rng.integers(0, 7))):
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        kind = int(rng.integers(3))
        if kind == 0:
            p0 = tuple(int(v) for v in rng.integers(0, [width, height]))
            p1 = tuple(int(v) for v in rng.integers(0, [width, height]))
            cv2.line(image, p0, p1, colour, int(rng.integers(1, 5)), lineType=cv2.LINE_8)
        elif kind == 1:
            steps = rng.normal(0.0, min(height, width) / 10.0, size=(int(rng.integers(3, 9)), 2))
            pts = np.cumsum(steps, axis=0) + rng.uniform([0.0, 0.0], [width, height])
            poly = np.rint(pts).astype(np.int32)
            cv2.polylines(image, [poly], False, colour, int(rng.integers(1, 4)), cv2.LINE_8)
        else:
            cv2.fillPoly(image, [_blob(rng, height, width)], colour, lineType=cv2.LINE_8)
