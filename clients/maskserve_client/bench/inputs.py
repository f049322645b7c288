"""The images a benchmark sends: files from disk, or random shapes drawn with Pillow.

Every image is encoded once, before any load is generated, so the load loops only hand
bytes to the client.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from maskserve_client.images import OCTET_STREAM, encode_array, media_type

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` → ``(640, 480)``: width by height, as image sizes are usually written."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}") from None
    if width < 8 or height < 8:
        raise ValueError(f"an image needs at least 8x8 pixels, got {text!r}")
    return width, height


def expand_paths(paths: Sequence[Path]) -> list[Path]:
    """Files as given; a folder stands for its images (by suffix), sorted by name."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    if not found:
        raise FileNotFoundError(
            f"no images ({', '.join(IMAGE_SUFFIXES)}) in {list(map(str, paths))}"
        )
    return found


def read_images(paths: Sequence[Path]) -> list[bytes]:
    """The encoded bytes of every image under ``paths``; unknown formats are refused."""
    images = []
    for path in expand_paths(paths):
        data = path.read_bytes()
        if media_type(data, path.name) == OCTET_STREAM:
            raise ValueError(f"not a JPEG, PNG or WebP image: {path}")
        images.append(data)
    return images


def draw_shapes(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """RGB uint8 [H, W, 3]: a plain background with 2 to 6 random ellipses, boxes, triangles."""
    background = tuple(int(v) for v in rng.integers(0, 256, 3))
    canvas = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(2, 7))):
        w = int(rng.integers(width // 10, width // 3 + 1))
        h = int(rng.integers(height // 10, height // 3 + 1))
        x = int(rng.integers(0, width - w))
        y = int(rng.integers(0, height - h))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        kind = int(rng.integers(0, 3))
        if kind == 0:
            draw.ellipse((x, y, x + w, y + h), fill=colour)
        elif kind == 1:
            draw.rectangle((x, y, x + w, y + h), fill=colour)
        else:
            draw.polygon([(x + w // 2, y), (x, y + h), (x + w, y + h)], fill=colour)
    pixels = np.asarray(canvas, dtype=np.int16)
    noise = rng.integers(-8, 9, pixels.shape, dtype=np.int16)  # not a flat, trivial image
    return np.clip(pixels + noise, 0, 255).astype(np.uint8)


def generate_images(
    count: int, size: tuple[int, int], seed: int, image_format: str = "JPEG"
) -> list[bytes]:
    """``count`` encoded images of ``size`` (width, height), the same for the same seed."""
    rng = np.random.default_rng(seed)
    width, height = size
    return [encode_array(draw_shapes(rng, width, height), image_format) for _ in range(count)]
