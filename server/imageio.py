"""Image bytes → RGB uint8 pixels, with size limits checked before any pixel is decoded."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageTooLargeError, InvalidImageError

DEFAULT_MAX_PIXELS = 40_000_000
MAX_SIDE = 30_000
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode ``data`` to an RGB uint8 [H, W, 3] array (EXIF orientation applied).

    The header is read first, so a decompression bomb or a 30 000-px image is refused
    before its pixels are allocated.
    """
    if not data:
        raise InvalidImageError("empty body: expected an encoded image (JPEG, PNG or WebP)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
            _check_size(image.width, image.height, max_pixels)
            image.load()
            image = ImageOps.exif_transpose(image)
            rgb = image.convert("RGB")
    except (ImageTooLargeError, InvalidImageError):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(f"image refused as a decompression bomb: {exc}") from None
    except UnidentifiedImageError:
        raise InvalidImageError("body is not a supported image (JPEG, PNG, WebP)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(
            f"image could not be decoded (truncated or corrupt): {exc}"
        ) from None
    return np.asarray(rgb)


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise InvalidImageError(f"image has no pixels ({width}x{height})")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > max_pixels:
        raise ImageTooLargeError(
            f"image is {width}x{height} = {width * height} pixels; the limit is "
            f"{max_pixels} pixels and {MAX_SIDE} px per side"
        )
