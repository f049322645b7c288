"""The budget of decoded pixels in flight."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from maskserve.errors import OverloadedError
from maskserve.pixel_budget import PixelBudget, header_pixels


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_header_pixels_reads_the_size_only() -> None:
    assert header_pixels(png(30, 20)) == 600
    assert header_pixels(b"junk") == 0


def test_refuses_past_the_budget_and_gives_back_on_exit() -> None:
    budget = PixelBudget(1000)
    with budget.reserve(600, "m"):
        with pytest.raises(OverloadedError, match="max_pixels_in_flight"), budget.reserve(600, "m"):
            pass
        with budget.reserve(400, "m"):
            assert budget.in_use == 1000
    assert budget.in_use == 0


def test_one_request_always_fits_and_errors_give_back() -> None:
    budget = PixelBudget(100)
    # alone: admitted even past the budget; an error gives it back
    with pytest.raises(RuntimeError), budget.reserve(5000, "m"):
        raise RuntimeError("decode failed")
    assert budget.in_use == 0
