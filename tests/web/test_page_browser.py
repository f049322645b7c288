"""The page in a real browser (Debian's headless chromium driven by Selenium): upload the
shipped example, wait for the answer, and check what is drawn against the JSON answer of
the same image, its masks decoded by pycocotools. Also: the page's RLE decoder against
pycocotools, the webcam over the WebSocket stream (chromium's synthetic camera), Swagger
UI rendering offline, and the API-key field.

Every wait is a WebDriverWait on a DOM condition. ``MASKSERVE_UPDATE_SCREENSHOT=1``
rewrites docs/screenshot.png; other runs leave the tree alone.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pycocotools.mask as mask_utils
import pytest
from api_harness import MODEL, RunningServer, running_server, server_settings
from browser_tools import (
    canvas_pixels,
    decode,
    inner_pixel,
    overdrawn,
    owners,
    resources_loaded,
    wait_for,
)
from PIL import Image

from maskserve.models.registry import ZOO_DIR

pytestmark = pytest.mark.browser
EXAMPLE = ZOO_DIR / MODEL / "example.png"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshot.png"
TINT_ALPHA = 0.5  # app.js: an unselected mask's tint
TOLERANCE = 2  # colour levels: rounding of the blend


def segment(server: RunningServer, **headers: str) -> dict[str, Any]:
    reply = httpx.post(
        f"{server.http_url}/v1/models/{MODEL}/segment",
        content=EXAMPLE.read_bytes(),
        headers={"content-type": "image/png", **headers},
        timeout=120,
    )
    reply.raise_for_status()
    return reply.json()


def upload_example(driver: Any, url: str) -> None:
    """Open the page, wait for the model list, choose the example, wait for the answer."""
    from selenium.webdriver.common.by import By

    driver.get(url + "/")
    wait_for(driver, "document.body.dataset.models", "1")
    driver.find_element(By.ID, "file").send_keys(str(EXAMPLE))
    wait_for(driver, "['done', 'error'].includes(document.body.dataset.state)", True)
    status = driver.find_element(By.ID, "status").text
    assert driver.execute_script("return document.body.dataset.state") == "done", status


def test_upload_draws_every_mask_and_label(browser: Any, web_server: RunningServer) -> None:
    from selenium.webdriver.common.by import By

    expected = segment(web_server)
    detections = expected["detections"]
    assert detections, "the example should show objects"
    upload_example(browser, web_server.http_url)
    shown = browser.execute_script("return window.maskserve.answer")
    assert [(d["label"], d["class_id"]) for d in shown["detections"]] == [
        (d["label"], d["class_id"]) for d in detections
    ]
    rows = browser.find_elements(By.CSS_SELECTOR, "#table tbody tr")
    assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows] == [
        d["label"] for d in detections
    ]
    assert "inference" in browser.find_element(By.ID, "timings").text
    drawn = canvas_pixels(browser)
    assert_masks_drawn(browser, drawn, detections)
    assert_hover_and_click_select(browser, detections)
    shot = np.asarray(Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB"))
    assert_screenshot_shows_canvas(browser, shot, drawn)
    assert all(u.startswith(web_server.http_url) for u in resources_loaded(browser))
    if os.environ.get("MASKSERVE_UPDATE_SCREENSHOT") == "1":
        Image.fromarray(shot).save(SCREENSHOT, optimize=True)


def assert_masks_drawn(driver: Any, drawn: np.ndarray, detections: list[dict[str, Any]]) -> None:
    """Each pixel of a mask is the picture blended with that instance's colour (the
    top-most where masks overlap); pixels of no mask are the picture, unchanged. Box
    outlines and label tags drawn over them are left out."""
    original = np.asarray(Image.open(EXAMPLE).convert("RGB")).astype(np.int16)
    assert drawn.shape == original.shape
    shape = original.shape[:2]
    owner = owners(detections, shape)
    free = ~overdrawn(detections, shape)
    tints = np.array(driver.execute_script(f"return [...Array({len(detections)}).keys()].map(rgb)"))
    assert len({tuple(t) for t in tints}) == len(detections), "every instance its own colour"
    error = np.abs(drawn - original).max(axis=2)
    assert error[(owner < 0) & free].max() <= TOLERANCE, "drawn outside every mask"
    for index, detection in enumerate(detections):
        visible = (owner == index) & free
        if not visible.any():
            continue  # hidden under higher-scoring masks and labels
        blend = np.round(original * (1 - TINT_ALPHA) + tints[index] * TINT_ALPHA)
        error = np.abs(drawn - blend).max(axis=2)[visible]
        assert error.max() <= TOLERANCE, (index, detection["label"], error.max())


def assert_hover_and_click_select(driver: Any, detections: list[dict[str, Any]]) -> None:
    """Hovering over a pixel of an object names it; a click keeps it when the mouse moves
    on to the background."""
    owner = owners(detections, tuple(detections[0]["mask"]["size"]))
    for index in (0, len(detections) - 1):
        if not (owner == index).any():
            continue  # hidden under higher-scoring masks
        text = mouse(driver, "mousemove", *inner_pixel(owner == index))
        assert f"#{index} {detections[index]['label']}" in text, text
    mouse(driver, "click", *inner_pixel(owner == 0))
    text = mouse(driver, "mousemove", *inner_pixel(owner < 0))
    assert f"#0 {detections[0]['label']}" in text, text
    assert driver.execute_script("return window.maskserve.pinned") == 0


def mouse(driver: Any, kind: str, x: int, y: int) -> str:
    """Dispatch a mouse event over canvas pixel (x, y); the details line after it."""
    return driver.execute_script(
        """
        const [kind, x, y] = arguments;
        const canvas = document.getElementById('canvas');
        const box = canvas.getBoundingClientRect();
        canvas.dispatchEvent(new MouseEvent(kind, {
          clientX: box.left + (x + 0.5) * box.width / canvas.width,
          clientY: box.top + (y + 0.5) * box.height / canvas.height,
        }));
        return document.getElementById('details').textContent;
        """,
        kind,
        x,
        y,
    )


def assert_screenshot_shows_canvas(driver: Any, shot: np.ndarray, drawn: np.ndarray) -> None:
    """The screenshot shows the drawn canvas (scaled to its CSS box) where the page is."""
    box = driver.execute_script(
        "const r = document.getElementById('canvas').getBoundingClientRect();"
        "return [r.left, r.top, r.width, r.height].map(Math.round)"
    )
    left, top, width, height = box
    assert width > 100 and height > 100, box
    crop = shot[top + 2 : top + height - 2, left + 2 : left + width - 2].astype(np.int16)
    scaled = np.asarray(Image.fromarray(drawn.astype(np.uint8)).resize((width, height)))
    scaled = scaled[2:-2, 2:-2].astype(np.int16)
    assert crop.shape == scaled.shape
    assert np.abs(crop - scaled).mean() < 12


def test_rle_decoder_matches_pycocotools(browser: Any, web_server: RunningServer) -> None:
    """rle.js decodes what pycocotools encodes: empty, full, edge pixels, long runs (counts
    of several characters, negative deltas) and noise (many short runs)."""
    browser.get(web_server.http_url + "/")
    rng = np.random.default_rng(7)
    blobs = np.zeros((480, 640), np.uint8)
    blobs[30:400, 50:600] = 1
    blobs[100:200, 100:500] = 0
    corners = np.zeros((37, 53), np.uint8)
    corners[0, 0] = corners[-1, -1] = 1
    cases = [
        np.zeros((20, 30), np.uint8),
        np.ones((20, 30), np.uint8),
        corners,
        blobs,
        (rng.random((150, 200)) < 0.5).astype(np.uint8),
        (rng.random((300, 400)) < 0.02).astype(np.uint8),
    ]
    for mask in cases:
        rle = mask_utils.encode(np.asfortranarray(mask))
        counts = rle["counts"].decode()
        got = browser.execute_script(
            """
            const [h, w, counts] = arguments;
            const out = new Uint8Array(h * w);
            rleForEach({size: [h, w], counts}, (x, y) => { out[y * w + x] = 1; });
            return [Array.from(out).join(''), rleArea({size: [h, w], counts})];
            """,
            *mask.shape,
            counts,
        )
        decoded = np.frombuffer(got[0].encode(), np.uint8).reshape(mask.shape) - ord("0")
        assert np.array_equal(decoded, mask), mask.shape
        assert got[1] == int(mask.sum())
        assert np.array_equal(decode({"size": list(mask.shape), "counts": counts}), mask == 1)


def test_webcam_streams_frames_over_the_websocket(browser: Any, web_server: RunningServer) -> None:
    """Start the webcam (chromium's synthetic camera): frames go over the WebSocket, the
    answers come back in frame order with at most two frames outstanding and are drawn
    over their frames; Stop ends the stream."""
    from selenium.webdriver.common.by import By

    browser.get(web_server.http_url + "/")
    wait_for(browser, "document.body.dataset.models", "1")
    browser.find_element(By.ID, "webcam").click()
    wait_for(browser, "(window.maskserve.streamStats?.results ?? 0) >= 3", True)
    browser.find_element(By.ID, "webcam").click()
    wait_for(browser, "window.maskserve.stream === null", True)
    stats = browser.execute_script("return window.maskserve.streamStats")
    assert stats["inOrder"] and stats["errors"] == 0, stats
    assert 1 <= stats["peak"] <= 2, stats
    size = browser.execute_script(
        "const c = document.getElementById('canvas'), a = window.maskserve.answer;"
        "return [c.width, c.height, a.image.width, a.image.height]"
    )
    assert size[:2] == size[2:] and size[0] > 0, size
    assert browser.find_element(By.ID, "webcam").text == "Start webcam"
    assert all(u.startswith(web_server.http_url) for u in resources_loaded(browser))


def test_swagger_ui_renders_offline(browser: Any, web_server: RunningServer) -> None:
    """/docs renders the OpenAPI 3.1 document (Swagger UI 5) from local files only."""
    browser.get(web_server.http_url + "/docs")
    wait_for(
        browser,
        "document.querySelectorAll('.opblock').length > 0 || "
        "document.querySelector('.errors-wrapper, .loading-container .errors') !== null",
        True,
    )
    text = browser.execute_script("return document.getElementById('swagger-ui').innerText")
    assert "Unable to render" not in text
    assert "/v1/models/{model}/segment" in text
    assert all(u.startswith(web_server.http_url) for u in resources_loaded(browser))


def test_the_page_asks_for_an_api_key(browser: Any) -> None:
    """With API keys the page loads without one, says it needs one, and works once typed."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    settings = server_settings(ZOO_DIR, models=[MODEL], api_keys=["page-test-key"])
    with running_server(settings) as server:
        browser.get(server.http_url + "/")
        wait_for(browser, "document.body.dataset.models", "needs-key")
        assert "API key" in browser.find_element(By.ID, "status").text
        browser.find_element(By.ID, "key").send_keys("page-test-key", Keys.TAB)
        wait_for(browser, "document.body.dataset.models", "1")
        browser.find_element(By.ID, "file").send_keys(str(EXAMPLE))
        wait_for(browser, "['done', 'error'].includes(document.body.dataset.state)", True)
        assert browser.execute_script("return document.body.dataset.state") == "done"
        shown = browser.execute_script("return window.maskserve.answer.detections.length")
        assert shown == len(segment(server, authorization="Bearer page-test-key")["detections"])
