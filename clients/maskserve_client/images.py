"""Whatever the caller has (file path, encoded bytes, RGB pixels) → encoded bytes + media type."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

#: An encoded image file's bytes, a path to one, or RGB uint8 pixels [H, W, 3].
ImageInput = bytes | bytearray | memoryview | str | os.PathLike[str] | np.ndarray

OCTET_STREAM = "application/octet-stream"
_EXTENSIONS = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
}


def media_type(data: bytes, name: str | None = None) -> str:
    """The media type from the file signature, else from the file name's extension."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if name is not None:
        return _EXTENSIONS.get(Path(name).suffix.lower(), OCTET_STREAM)
    return OCTET_STREAM


def encode_array(pixels: np.ndarray, image_format: str = "PNG", quality: int = 90) -> bytes:
    """RGB (or grey) uint8 pixels → an encoded image; PNG keeps them exact."""
    if pixels.dtype != np.uint8:
        raise TypeError(f"pixels must be uint8, got {pixels.dtype}")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)):
        raise ValueError(f"pixels must be [H, W, 3] RGB or [H, W] grey, got {pixels.shape}")
    buffer = io.BytesIO()
    options = {"quality": quality} if image_format.upper() in ("JPEG", "WEBP") else {}
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def encode_image(image: ImageInput) -> tuple[bytes, str]:
    """``(bytes, media type)`` to send; arrays are sent as lossless PNG."""
    if isinstance(image, np.ndarray):
        return encode_array(image), "image/png"
    if isinstance(image, bytes | bytearray | memoryview):
        data = bytes(image)
        return data, media_type(data)
    path = Path(image)
    data = path.read_bytes()
    return data, media_type(data, path.name)


def image_bytes(image: ImageInput) -> bytes:
    """Encoded bytes pass through untouched; paths are read, pixels encoded."""
    return image if isinstance(image, bytes) else encode_image(image)[0]


def load_rgb(data: bytes) -> np.ndarray:
    """Decode like the server does (EXIF orientation applied), so boxes line up."""
    with Image.open(io.BytesIO(data)) as opened:
        return np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))
