"""Image bytes → RGB uint8 pixels, with size limits checked before any pixel is decoded.

Pillow reads every header (format, size, the decompression-bomb check). JPEGs, the common
case, are then decoded by ``torchvision.io.decode_jpeg``: the same libjpeg-turbo result
(tests/core/test_imageio.py compares them pixel for pixel) in about 75 % of Pillow's time,
because it writes the RGB planes once instead of decoding, converting and copying into
numpy (benchmarks/bench_decode_pool.py). Anything torchvision refuses falls back to Pillow,
whose error messages are the ones clients see. torchvision 0.29 deprecates its image
codecs (in favour of torchcodec); if a later release drops them, Pillow decodes everything.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

try:
    from torchvision.io import ImageReadMode, decode_jpeg
except ImportError:  # deprecated in torchvision 0.29; Pillow decodes everything without it
    decode_jpeg = None

from maskserve.errors import ImageTooLargeError, InvalidImageError

DEFAULT_MAX_PIXELS = 40_000_000
MAX_SIDE = 30_000
# only the documented formats: every other parser Pillow has (TIFF, BMP, GIF, ...) would
# otherwise be reachable by any client whatever content type it declares
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP")


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode ``data`` to an RGB uint8 [H, W, 3] array (EXIF orientation applied).

    The header is read first, so a decompression bomb or a 30 000-px image is refused
    before its pixels are allocated. The array may be a view of channel-first memory
    (JPEGs): the models' preprocessing wants channels first anyway.
    """
    if not data:
        raise InvalidImageError("empty body: expected an encoded image (JPEG, PNG or WebP)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
            _check_size(image.width, image.height, max_pixels)
            if image.format == "JPEG" and (pixels := _decode_jpeg(data)) is not None:
                return pixels
            image.load()
            image = ImageOps.exif_transpose(image)
            rgb = _to_rgb(image)
    except (ImageTooLargeError, InvalidImageError):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLargeError(
            f"image refused as a decompression bomb: its header declares more than the "
            f"limit of {max_pixels} pixels"
        ) from None
    except UnidentifiedImageError:
        raise InvalidImageError("body is not a supported image (JPEG, PNG, WebP)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(
            f"image could not be decoded (truncated or corrupt): {exc}"
        ) from None
    return np.asarray(rgb)


def _decode_jpeg(data: bytes) -> np.ndarray | None:
    """libjpeg-turbo straight into an RGB tensor; None where it refuses (Pillow decides)."""
    if decode_jpeg is None:
        return None
    encoded = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    try:
        chw = decode_jpeg(encoded, mode=ImageReadMode.RGB, apply_exif_orientation=True)
    except RuntimeError:
        return None
    return chw.permute(1, 2, 0).numpy()


def _to_rgb(image: Image.Image) -> Image.Image | np.ndarray:
    """RGB uint8; 16- and 32-bit greyscale scaled to 8 bits (Pillow's convert clips them:
    a 16-bit PNG became all white)."""
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I"):
        values = np.asarray(image).astype(np.int64)
        bits = 16 if image.mode.startswith("I;16") or values.max(initial=0) < 65536 else 32
        grey = (np.clip(values, 0, (1 << bits) - 1) >> (bits - 8)).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    return image.convert("RGB")


def check_pixels(pixels: np.ndarray, max_pixels: int = DEFAULT_MAX_PIXELS) -> int:
    """Already-decoded pixels as the models take them (RGB uint8 [H, W, 3]); their count."""
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 3:
        raise InvalidImageError("pixels must be a uint8 array of shape [height, width, 3]")
    if pixels.shape[2] != 3:
        raise InvalidImageError(f"pixels must have 3 channels (RGB), not {pixels.shape[2]}")
    _check_size(pixels.shape[1], pixels.shape[0], max_pixels)
    return pixels.shape[0] * pixels.shape[1]


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise InvalidImageError(f"image has no pixels ({width}x{height})")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > max_pixels:
        raise ImageTooLargeError(
            f"image is {width}x{height} = {width * height} pixels; the limit is "
            f"{max_pixels} pixels and {MAX_SIDE} px per side"
        )
