"""Draw a result over its image: masks tinted in a colour per class, boxes, labels."""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from maskserve_client.types import Detection, SegmentResult

MASK_OPACITY = 0.45
BOX_WIDTH = 2
_GOLDEN = 0.618033988749895


def class_colour(class_id: int) -> tuple[int, int, int]:
    """A stable colour per class: hues spaced by the golden ratio stay apart for many ids."""
    red, green, blue = colorsys.hsv_to_rgb((0.07 + class_id * _GOLDEN) % 1.0, 0.8, 0.95)
    return round(red * 255), round(green * 255), round(blue * 255)


def _tint_masks(pixels: np.ndarray, detections: list[Detection]) -> np.ndarray:
    """Blend every mask; lower-scoring first so the best detection ends up on top."""
    canvas = pixels.astype(np.float32)
    for det in sorted(detections, key=lambda d: d.score):
        if not det.has_mask:
            continue
        mask = det.mask()
        if mask.shape != canvas.shape[:2]:
            raise ValueError(f"mask is {mask.shape}, the image {canvas.shape[:2]}")
        colour = np.asarray(class_colour(det.class_id), dtype=np.float32)
        canvas[mask] += (colour - canvas[mask]) * MASK_OPACITY
    return np.clip(canvas + 0.5, 0, 255).astype(np.uint8)


def _draw_box(draw: ImageDraw.ImageDraw, det: Detection, height: int) -> None:
    x1, y1, x2, y2 = det.box
    colour = class_colour(det.class_id)
    draw.rectangle((x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)), outline=colour, width=BOX_WIDTH)
    text = f"{det.label} {det.score:.2f}"
    left, top, right, bottom = draw.textbbox((0, 0), text)
    text_h = bottom - top + 2
    # Above the box when there is room, else just inside its top edge.
    y = y1 - text_h if y1 >= text_h else min(y1, max(height - text_h, 0))
    draw.rectangle((x1, y, x1 + right - left + 3, y + text_h), fill=colour)
    draw.text((x1 + 2, y + 1 - top), text, fill=(0, 0, 0))


def draw_overlay(pixels: np.ndarray, result: SegmentResult) -> Image.Image:
    """RGB uint8 [H, W, 3] + its result → an RGB overlay image of the same size."""
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected RGB pixels [H, W, 3], got {pixels.shape}")
    picture = Image.fromarray(_tint_masks(pixels, result.detections))
    draw = ImageDraw.Draw(picture)
    for det in sorted(result.detections, key=lambda d: d.score):
        _draw_box(draw, det, picture.height)
    return picture


def save_overlay(pixels: np.ndarray, result: SegmentResult, path: Path) -> None:
    draw_overlay(pixels, result).save(path, format="PNG")
