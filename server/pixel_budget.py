"""A global budget of decoded pixels in flight, so that admission refuses before memory
runs out.

``max_pixels`` bounds one image; a burst of large images can still take the server's
memory together (10 images of 6000² are 1 GB of RGB before the model's own copies). Each
request reserves its image's pixel count, read from the header before anything is
decoded, for as long as it is in flight; a request that would take the total past the
budget gets a fast 503 (overloaded) instead. One request is always admitted when nothing
else is in flight, so an image within ``max_pixels`` is never refused for its size alone.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator

from PIL import Image

from maskserve.errors import OverloadedError
from maskserve.imageio import SUPPORTED_FORMATS
from maskserve.memory_release import MemoryRelease

BYTES_PER_PIXEL = 3  # decoded RGB, before the model's own copies


def header_pixels(data: bytes) -> int:
    """width × height from the image's header (0 if unreadable: the decoder says why)."""
    try:
        with Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS) as image:
            return int(image.width) * int(image.height)
    except Exception:
        return 0


class PixelBudget:
    """Used from the event loop only (no locking)."""

    def __init__(self, limit: int, memory: MemoryRelease | None = None) -> None:
        self.limit = limit
        self.in_use = 0
        self._memory = memory

    @contextlib.contextmanager
    def reserve(self, pixels: int, model: str) -> Iterator[None]:
        if self.in_use and self.in_use + pixels > self.limit:
            raise OverloadedError(
                f"model {model!r} is overloaded: {self.in_use} decoded pixels are in flight "
                f"and this image adds {pixels}, past the budget of {self.limit} "
                "(max_pixels_in_flight); retry later"
            )
        self.in_use += pixels
        try:
            if self._memory is None:
                yield
            else:
                with self._memory.hold(pixels * BYTES_PER_PIXEL):
                    yield  # a large image: its memory is given back once it is answered
        finally:
            self.in_use -= pixels
