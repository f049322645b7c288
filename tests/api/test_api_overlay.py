"""The overlay picture over REST (``Accept: image/...`` or ``?format=``): the drawing of
``maskserve predict``, tinted exactly where the JSON answer's masks are."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pycocotools.mask as mask_utils
import pytest
from api_harness import MODEL, SHIPPED, RunningServer, metric, needs_shipped_model
from PIL import Image

from maskserve.api.negotiation import answer_type
from maskserve.errors import NotAcceptableError
from maskserve.overlay import draw_overlay

SEGMENT = f"/v1/models/{MODEL}/segment"
PICTURES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}


@pytest.fixture(scope="module")
def example() -> tuple[bytes, np.ndarray]:
    """The shipped example image (lossless WebP: its pixels, under the test body limit)."""
    pixels = np.asarray(Image.open(SHIPPED / "example.png").convert("RGB"))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="WEBP", lossless=True)
    return buffer.getvalue(), pixels


def post(
    server: RunningServer, image: bytes, accept: str | None = None, **params: object
) -> httpx.Response:
    headers = {"content-type": "image/webp"}
    if accept is not None:
        headers["accept"] = accept
    return httpx.post(
        server.http_url + SEGMENT, content=image, params=params, headers=headers, timeout=60
    )


def refused(server: RunningServer, code: str) -> float:
    labels = {"model": MODEL, "protocol": "rest", "status": code}
    return metric(server.http_url, "maskserve_requests_total", **labels)


@pytest.fixture(scope="module")
def detections(server: RunningServer, example: tuple[bytes, np.ndarray]) -> list[dict]:
    answer = post(server, example[0])
    assert answer.headers["content-type"] == "application/json"
    found = answer.json()["detections"]
    assert found, "the shipped model should find shapes in its example image"
    return found


@needs_shipped_model
def test_png_answer_is_the_predict_drawing(
    server: RunningServer, example: tuple[bytes, np.ndarray], detections: list[dict]
) -> None:
    image, pixels = example
    answer = post(server, image, accept="image/png")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/png" and answer.headers["vary"] == "Accept"
    picture = Image.open(io.BytesIO(answer.content))
    assert picture.format == "PNG" and picture.size == (pixels.shape[1], pixels.shape[0])
    drawn = np.asarray(picture.convert("RGB"))
    np.testing.assert_array_equal(drawn, np.asarray(draw_overlay(pixels, detections)))


@needs_shipped_model
def test_png_differs_from_the_input_where_the_masks_are(
    server: RunningServer, example: tuple[bytes, np.ndarray], detections: list[dict]
) -> None:
    """Outside the boxes and labels, the picture differs from the input exactly on the
    masks' pixels (pycocotools decodes them from the JSON answer to the same image)."""
    image, pixels = example
    drawn = np.asarray(Image.open(io.BytesIO(post(server, image, format="png").content)))
    masks = np.zeros(pixels.shape[:2], dtype=bool)
    for det in detections:
        masks |= mask_utils.decode(det["mask"]) > 0
    unmasked = [{**det, "mask": None} for det in detections]
    annotations = (np.asarray(draw_overlay(pixels, unmasked)) != pixels).any(axis=2)
    changed = (drawn != pixels).any(axis=2)
    assert masks.sum() > 1000
    assert not (changed & ~masks & ~annotations).any()  # nothing outside the masks
    inside = masks & ~annotations
    # a blend leaves only pixels already (within rounding) of their tint unchanged
    assert changed[inside].mean() > 0.99


@needs_shipped_model
@pytest.mark.parametrize("media", sorted(PICTURES))
def test_every_picture_type_by_accept_and_by_format(
    server: RunningServer, example: tuple[bytes, np.ndarray], media: str
) -> None:
    image, pixels = example
    by_accept = post(server, image, accept=f"application/json;q=0.5, {media}")
    by_format = post(server, image, accept="application/json", format=media.split("/")[1])
    for answer in (by_accept, by_format):
        assert answer.status_code == 200 and answer.headers["content-type"] == media
        picture = Image.open(io.BytesIO(answer.content))
        assert picture.format == PICTURES[media]
        assert picture.size == (pixels.shape[1], pixels.shape[0])


@needs_shipped_model
@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "image/*;q=0.5, */*"])
def test_json_stays_the_default(
    server: RunningServer, example: tuple[bytes, np.ndarray], accept: str | None
) -> None:
    answer = post(server, example[0], accept=accept)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["detections"]


@needs_shipped_model
def test_format_json_overrides_accept(
    server: RunningServer, example: tuple[bytes, np.ndarray]
) -> None:
    answer = post(server, example[0], accept="image/png", format="json")
    assert answer.headers["content-type"] == "application/json"


@needs_shipped_model
def test_mask_formats_draw_the_same_or_no_masks(
    server: RunningServer, example: tuple[bytes, np.ndarray], detections: list[dict]
) -> None:
    image, pixels = example
    rle = post(server, image, format="png").content
    assert post(server, image, format="png", mask_format="polygon").content == rle
    boxes_only = np.asarray(
        Image.open(io.BytesIO(post(server, image, format="png", mask_format="none").content))
    )
    unmasked = [{**det, "mask": None} for det in detections]
    np.testing.assert_array_equal(boxes_only, np.asarray(draw_overlay(pixels, unmasked)))


@needs_shipped_model
def test_unacceptable_accept_is_406_and_counted(
    server: RunningServer, example: tuple[bytes, np.ndarray]
) -> None:
    before = refused(server, "not_acceptable")
    answer = post(server, example[0], accept="text/html, image/gif")
    assert answer.status_code == 406
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"]["code"] == "not_acceptable"
    assert refused(server, "not_acceptable") == before + 1


@needs_shipped_model
def test_unknown_format_is_400_and_counted(
    server: RunningServer, example: tuple[bytes, np.ndarray]
) -> None:
    before = refused(server, "invalid_option")
    answer = post(server, example[0], format="gif")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_option"
    assert refused(server, "invalid_option") == before + 1


def test_openapi_documents_pictures_and_406(server: RunningServer) -> None:
    spec = httpx.get(server.http_url + "/openapi.json", timeout=30).json()
    responses = spec["paths"]["/v1/models/{model}/segment"]["post"]["responses"]
    assert set(PICTURES) | {"application/json"} <= set(responses["200"]["content"])
    assert "406" in responses


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "application/json"),
        ("", "application/json"),
        ("*/*", "application/json"),
        ("image/*", "image/png"),
        ("image/webp", "image/webp"),
        ("image/png;q=0.4, image/jpeg;q=0.8", "image/jpeg"),
        ("image/*;q=0.9, image/webp;q=0", "image/png"),
        ("image/png;q=0, */*", "application/json"),
        ("application/json;q=0, image/*;q=0.1", "image/png"),
        ("IMAGE/PNG", "image/png"),
        ("text/html,application/xhtml+xml,*/*;q=0.8", "application/json"),
        ("image/png;q=oops, image/jpeg", "image/jpeg"),
        ("garbage", "application/json"),
    ],
)
def test_accept_negotiation(accept: str | None, expected: str) -> None:
    assert answer_type(accept, None) == expected


@pytest.mark.parametrize("accept", ["text/html", "image/gif, text/*", "*/*;q=0"])
def test_accept_without_an_answer_type_is_not_acceptable(accept: str) -> None:
    with pytest.raises(NotAcceptableError):
        answer_type(accept, None)


def test_format_wins_over_accept() -> None:
    assert answer_type("text/html", "webp") == "image/webp"
    assert answer_type("image/png", "json") == "application/json"
