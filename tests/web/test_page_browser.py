"""The page in a real browser (Debian's headless chromium driven by Selenium): upload the
shipped example, wait for the answer, and check what is drawn against the JSON answer.

Nothing downloads a browser: chromium and chromedriver come from Debian (scripts/test
installs them on CI). ``MASKSERVE_UPDATE_SCREENSHOT=1`` rewrites docs/screenshot.png.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pycocotools.mask as mask_utils
import pytest
from api_harness import MODEL, RunningServer
from PIL import Image

from maskserve.models.registry import ZOO_DIR

pytestmark = pytest.mark.browser
EXAMPLE = ZOO_DIR / MODEL / "example.png"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshot.png"
CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
WAIT_S = 120


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (CHROMIUM and DRIVER):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install them)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1300,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_script_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def canvas_pixels(driver: Any) -> np.ndarray:
    url = driver.execute_script("return document.getElementById('canvas').toDataURL('image/png')")
    data = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.int16)


def test_upload_draws_every_mask_and_label(browser: Any, web_server: RunningServer) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    expected = httpx.post(
        f"{web_server.http_url}/v1/models/{MODEL}/segment",
        content=EXAMPLE.read_bytes(),
        headers={"content-type": "image/png"},
        timeout=60,
    ).json()
    wait = WebDriverWait(browser, WAIT_S)
    browser.get(web_server.http_url + "/")
    wait.until(lambda d: d.execute_script("return document.body.dataset.models") == "1")
    browser.find_element(By.ID, "file").send_keys(str(EXAMPLE))
    wait.until(lambda d: d.execute_script("return document.body.dataset.state") == "done")
    shown = browser.execute_script("return window.maskserve.answer")
    assert [d["label"] for d in shown["detections"]] == [
        d["label"] for d in expected["detections"]
    ]
    rows = browser.find_elements(By.CSS_SELECTOR, "#table tbody tr")
    assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows] == [
        d["label"] for d in expected["detections"]
    ]
    assert_masks_drawn(canvas_pixels(browser), expected)
    assert_hover_shows_details(browser, expected)
    shot = browser.get_screenshot_as_png()
    assert Image.open(io.BytesIO(shot)).size[0] > 0
    if os.environ.get("MASKSERVE_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.write_bytes(shot)


def assert_masks_drawn(drawn: np.ndarray, expected: dict[str, Any]) -> None:
    original = np.asarray(Image.open(EXAMPLE).convert("RGB")).astype(np.int16)
    assert drawn.shape == original.shape
    changed = np.abs(drawn - original).max(axis=2) > 12
    covered = np.zeros(changed.shape, bool)
    for detection in expected["detections"]:
        rle = {**detection["mask"], "counts": detection["mask"]["counts"].encode()}
        mask = mask_utils.decode(rle).astype(bool)
        covered |= mask
        assert changed[mask].mean() >= 0.95, detection["label"]  # tinted where the mask is
    boxes = np.zeros(changed.shape, bool)
    for detection in expected["detections"]:  # outlines and label tags
        x1, y1, x2, y2 = (int(round(v)) for v in detection["box"])
        boxes[max(0, y1 - 18) : y2 + 3, max(0, x1 - 3) : x2 + 3] = True
    untouched = ~covered & ~boxes
    assert changed[untouched].mean() <= 0.01  # nothing drawn elsewhere


def assert_hover_shows_details(driver: Any, expected: dict[str, Any]) -> None:
    first = expected["detections"][0]
    rle = {**first["mask"], "counts": first["mask"]["counts"].encode()}
    ys, xs = np.nonzero(mask_utils.decode(rle))
    middle = len(xs) // 2
    text = driver.execute_script(
        """
        const [x, y] = arguments;
        const canvas = document.getElementById('canvas');
        const box = canvas.getBoundingClientRect();
        canvas.dispatchEvent(new MouseEvent('mousemove', {
          clientX: box.left + (x + 0.5) * box.width / canvas.width,
          clientY: box.top + (y + 0.5) * box.height / canvas.height,
        }));
        return document.getElementById('details').textContent;
        """,
        int(xs[middle]),
        int(ys[middle]),
    )
    owner = driver.execute_script(
        "const [x, y] = arguments; const c = document.getElementById('canvas');"
        "return window.maskserve.owner[y * c.width + x];",
        int(xs[middle]),
        int(ys[middle]),
    )
    label = expected["detections"][owner]["label"]
    assert label in text and f"#{owner}" in text
