"""Helpers of the browser tests: DOM waits, the canvas read back, masks from pycocotools."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils
from PIL import Image

BROWSER_WAIT_S = 120  # a safety net only: every wait is on a DOM condition


def wait_for(driver: Any, script: str, expected: Any) -> None:
    """Wait until the JS expression ``script`` evaluates to ``expected``."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, BROWSER_WAIT_S).until(
        lambda d: d.execute_script(f"return {script}") == expected,
        message=f"waiting for {script} == {expected!r}",
    )


def resources_loaded(driver: Any) -> list[str]:
    """Every URL the current page fetched: the document, scripts, styles, fetch calls."""
    return driver.execute_script(
        "return [location.href].concat(performance.getEntriesByType('resource').map((e) => e.name))"
    )


def canvas_pixels(driver: Any) -> np.ndarray:
    """The page's canvas at its own resolution, as int16 RGB (read back as a PNG)."""
    url = driver.execute_script("return document.getElementById('canvas').toDataURL('image/png')")
    data = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.int16)


def decode(mask: dict[str, Any]) -> np.ndarray:
    """A detection's JSON mask as a boolean array, by pycocotools."""
    return mask_utils.decode({**mask, "counts": mask["counts"].encode()}).astype(bool)


def owners(detections: list[dict[str, Any]], shape: tuple[int, int]) -> np.ndarray:
    """Index of the top-most (first, highest-scoring) detection at each pixel, -1 if none."""
    owner = np.full(shape, -1, np.int32)
    for index in reversed(range(len(detections))):
        owner[decode(detections[index]["mask"])] = index
    return owner


def inner_pixel(mask: np.ndarray) -> tuple[int, int]:
    """(x, y) of a pixel of ``mask`` whose 5×5 neighbourhood is in it too (a mouse event
    over a scaled canvas may land a pixel off), else of any pixel of it."""
    inner = mask.copy()
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            inner &= np.roll(mask, (dy, dx), axis=(0, 1))
    ys, xs = np.nonzero(inner if inner.any() else mask)
    middle = len(xs) // 2
    return int(xs[middle]), int(ys[middle])


def overdrawn(detections: list[dict[str, Any]], shape: tuple[int, int]) -> np.ndarray:
    """Where box outlines and label tags may cover the tint: a band around every box edge
    and the tag's row above (or just inside) the box's top, as wide as a long label."""
    covered = np.zeros(shape, bool)
    height, width = shape
    for detection in detections:
        x1, y1, x2, y2 = (round(v) for v in detection["box"])
        covered[max(0, y1 - 3) : y1 + 4, max(0, x1 - 3) : x2 + 4] = True
        covered[max(0, y2 - 3) : y2 + 4, max(0, x1 - 3) : x2 + 4] = True
        covered[max(0, y1 - 3) : y2 + 4, max(0, x1 - 3) : x1 + 4] = True
        covered[max(0, y1 - 3) : y2 + 4, max(0, x2 - 3) : x2 + 4] = True
        tag_top = max(0, y1 - 18)
        covered[tag_top : max(y1, 16) + 3, max(0, x1 - 3) : min(width, x1 + 130)] = True
    return covered[:height, :width]
