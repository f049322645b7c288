"""Overlay pictures: masks in colour, boxes and labels drawn over the input image.

The one drawing of the server: ``maskserve predict`` writes it as PNG files, and
``POST /v1/models/{m}/segment`` answers it when the client asks for an image
(:func:`render_overlay`). Both draw the result's JSON detections (RLE masks; a detection
without a mask gets its box and label only).
"""

from __future__ import annotations

import colorsys
import io
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from maskserve.imageio import decode_image
from maskserve.masks.rle_string import decompress_counts

MASK_ALPHA = 0.5
#: Media type → Pillow format and encoder options of the overlay answers. PNG at zlib
#: level 1: lossless, and on a photo-sized overlay several times faster than the default 6.
ENCODINGS: dict[str, tuple[str, dict[str, Any]]] = {
    "image/png": ("PNG", {"compress_level": 1}),
    "image/jpeg": ("JPEG", {"quality": 90}),
    "image/webp": ("WEBP", {"quality": 90}),
}


def colour(index: int) -> tuple[int, int, int]:
    """A distinct, stable colour per class id (golden-ratio hue steps)."""
    hue = (index * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """Compressed COCO RLE → bool [H, W] (column-major runs, starting with zeros)."""
    height, width = rle["size"]
    counts = decompress_counts(rle["counts"])
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, counts)
    return flat.reshape(width, height).T


def draw_overlay(image: np.ndarray, detections: list[dict[str, Any]]) -> Image.Image:
    """Blend each detection's mask in its class colour, then draw its box and label."""
    canvas = image.astype(np.float32)
    for det in reversed(detections):
        if det.get("mask"):
            mask = rle_to_mask(det["mask"])
            tint = np.array(colour(det["class_id"]), dtype=np.float32)
            canvas[mask] = canvas[mask] * (1 - MASK_ALPHA) + tint * MASK_ALPHA
    picture = Image.fromarray(canvas.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    for det in detections:
        x1, y1, x2, y2 = det["box"]
        rgb = colour(det["class_id"])
        draw.rectangle((x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)), outline=rgb, width=2)
        text = f"{det['label']} {det['score']:.2f}"
        left, top, right, bottom = draw.textbbox((x1, y1), text)
        lift = bottom - top + 2 if top - (bottom - top + 2) >= 0 else 0  # inside at the top edge
        draw.rectangle((left, top - lift, right + 2, bottom - lift), fill=rgb)
        draw.text((x1 + 1, y1 - lift), text, fill=(0, 0, 0))
    return picture


def encode_overlay(image: np.ndarray, detections: list[dict[str, Any]], media_type: str) -> bytes:
    """:func:`draw_overlay` encoded as ``media_type`` (a key of :data:`ENCODINGS`)."""
    fmt, options = ENCODINGS[media_type]
    buffer = io.BytesIO()
    draw_overlay(image, detections).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def render_overlay(
    data: bytes, detections: list[dict[str, Any]], media_type: str, max_pixels: int
) -> bytes:
    """The overlay of an encoded image the service has already segmented (so it decodes):
    decoded again as the service decoded it, drawn and encoded. CPU work for a thread."""
    return encode_overlay(decode_image(data, max_pixels), detections, media_type)
