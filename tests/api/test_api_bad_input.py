"""Bad input over REST: every case gets a clear 4xx/504 and the server keeps serving.

A 1×1 image is a valid image: it is answered 200 with whatever the model finds in it
(normally nothing), masks sized [1, 1].
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pytest
from api_harness import BODY_LIMIT, MODEL, PIXEL_LIMIT, RunningServer, encode
from prometheus_client.parser import text_string_to_metric_families

SEGMENT = f"/v1/models/{MODEL}/segment"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A ~100-byte PNG whose header claims width × height RGB pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", idat)
        + _chunk(b"IEND", b"")
    )


def post(server: RunningServer, body: bytes, content_type: str | None = "image/png", **params):
    headers = {} if content_type is None else {"content-type": content_type}
    return httpx.post(
        server.http_url + SEGMENT, content=body, headers=headers, params=params, timeout=60
    )


@pytest.fixture
def still_serving(server: RunningServer, png: bytes) -> Iterator[None]:
    """After the test: a good request is still answered 200."""
    yield
    assert post(server, png).status_code == 200


def _expect(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


@pytest.mark.usefixtures("still_serving")
@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("empty", 400, "invalid_image"),
        ("truncated_jpeg", 400, "invalid_image"),
        ("text_as_png", 400, "invalid_image"),
        ("over_pixel_limit", 413, "image_too_large"),
        ("decompression_bomb", 413, "image_too_large"),
    ],
)
def test_bad_images(server: RunningServer, jpeg: bytes, case: str, status: int, code: str) -> None:
    side = int(PIXEL_LIMIT**0.5) + 1
    bodies = {
        "empty": (b"", "image/png"),
        "truncated_jpeg": (jpeg[: len(jpeg) // 2], "image/jpeg"),
        "text_as_png": (b"this is plain text, not a PNG", "image/png"),
        "over_pixel_limit": (encode(np.zeros((side, side, 3), np.uint8), "PNG"), "image/png"),
        "decompression_bomb": (png_bomb(), "image/png"),
    }
    body, content_type = bodies[case]
    _expect(post(server, body, content_type), status, code)


@pytest.mark.usefixtures("still_serving")
def test_one_pixel_image_is_answered(server: RunningServer) -> None:
    response = post(server, encode(np.full((1, 1, 3), 200, np.uint8), "PNG"))
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["image"] == {"width": 1, "height": 1}
    assert all(d["mask"]["size"] == [1, 1] for d in data["detections"])


@pytest.mark.usefixtures("still_serving")
@pytest.mark.parametrize("content_type", ["text/plain", "application/json", None])
def test_wrong_content_type_is_415(server: RunningServer, png: bytes, content_type) -> None:
    _expect(post(server, png, content_type), 415, "unsupported_media_type")


@pytest.mark.usefixtures("still_serving")
def test_unknown_model_is_404(server: RunningServer, png: bytes) -> None:
    response = httpx.post(
        server.http_url + "/v1/models/no_such_model/segment",
        content=png,
        headers={"content-type": "image/png"},
    )
    _expect(response, 404, "model_not_found")


@pytest.mark.usefixtures("still_serving")
def test_body_over_the_limit_is_413(server: RunningServer) -> None:
    _expect(post(server, b"\0" * (2 * BODY_LIMIT)), 413, "payload_too_large")


@pytest.mark.usefixtures("still_serving")
def test_chunked_body_over_the_limit_is_413(server: RunningServer) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the server must count
        for _ in range(4):
            yield b"\0" * (BODY_LIMIT // 2)

    _expect(post(server, chunks()), 413, "payload_too_large")  # type: ignore[arg-type]


@pytest.mark.usefixtures("still_serving")
@pytest.mark.parametrize(
    "params",
    [
        {"score_threshold": "2"},
        {"score_threshold": "abc"},
        {"max_detections": "-1"},
        {"classes": "1,x"},
        {"classes": ",,,"},
        {"classes": "99"},
        {"mask_format": "bitmap"},
        {"timeout": "0"},
    ],
)
def test_bad_options_are_400(server: RunningServer, png: bytes, params: dict) -> None:
    _expect(post(server, png, **params), 400, "invalid_option")


@pytest.mark.usefixtures("still_serving")
def test_expired_deadline_is_504(server: RunningServer, png: bytes) -> None:
    _expect(post(server, png, timeout="0.000001"), 504, "deadline_exceeded")


def requests_counted(server: RunningServer, protocol: str = "rest") -> dict[str, float]:
    """``maskserve_requests_total`` for the test model, by status, read from /metrics."""
    text = httpx.get(server.http_url + "/metrics", timeout=30).text
    return {
        sample.labels["status"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "maskserve_requests"
        for sample in family.samples
        if sample.name == "maskserve_requests_total"
        and sample.labels["model"] == MODEL
        and sample.labels["protocol"] == protocol
    }


@pytest.mark.parametrize(
    ("send", "code"),
    [
        (lambda s, png: post(s, png, content_type="text/plain"), "unsupported_media_type"),
        (lambda s, png: post(s, png, max_detections="-3"), "invalid_option"),
        (lambda s, png: post(s, png, classes="x"), "invalid_option"),
        (lambda s, png: post(s, png, timeout="0"), "invalid_option"),
        (lambda s, png: post(s, b"\0" * (2 * BODY_LIMIT)), "payload_too_large"),
        (lambda s, png: post(s, b"not an image"), "invalid_image"),
        (lambda s, png: post(s, png), "ok"),
    ],
)
def test_every_answer_is_counted_with_its_status(
    server: RunningServer,
    png: bytes,
    send: Callable[[RunningServer, bytes], httpx.Response],
    code: str,
) -> None:
    before = requests_counted(server).get(code, 0.0)
    response = send(server, png)
    assert (response.status_code == 200) == (code == "ok")
    if code != "ok":
        assert response.json()["error"]["code"] == code
    assert requests_counted(server).get(code, 0.0) == before + 1
