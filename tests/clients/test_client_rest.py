"""The REST clients against a scripted HTTP server on 127.0.0.1: requests, parsing, retries."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import numpy as np
import pytest
from client_stubs import Reply, StubHttpServer, disk_mask, png_bytes, segment_body
from maskserve_client import (
    NO_RETRY,
    AsyncClient,
    Client,
    MaskserveClientError,
    RetryPolicy,
)
from maskserve_client.retry import parse_retry_after
from PIL import Image

FAST_RETRY = RetryPolicy(max_retries=2, backoff_s=0.0)


def test_segment_sends_the_image_and_options_and_parses_the_result(
    http_stub: StubHttpServer,
) -> None:
    http_stub.queue(Reply(body=segment_body()))
    image = png_bytes(np.zeros((48, 64, 3), dtype=np.uint8))
    with Client(http_stub.url) as client:
        result = client.segment(
            image,
            model="yolact_shapes",
            score_threshold=0.25,
            max_detections=7,
            classes=[0, 2],
            timeout=1.5,
        )
    seen = http_stub.seen[0]
    assert (seen.method, seen.path) == ("POST", "/v1/models/yolact_shapes/segment")
    assert seen.query == {
        "score_threshold": "0.25",
        "max_detections": "7",
        "classes": "0,2",
        "mask_format": "rle",
        "timeout": "1.5",
    }
    assert seen.headers["content-type"] == "image/png"
    assert seen.body == image

    assert (result.model, result.width, result.height) == ("yolact_shapes", 64, 48)
    assert result.timings["total"] == pytest.approx(0.013)
    first, second = result.detections
    assert (first.class_id, first.label, first.score) == (1, "circle", 0.9)
    assert first.box == (20.0, 10.0, 41.0, 31.0)
    assert np.array_equal(first.mask(), disk_mask(48, 64, 20, 30, 10))
    assert not second.has_mask
    assert result.to_json() == segment_body()


def test_images_given_as_path_or_pixels(http_stub: StubHttpServer, tmp_path: Path) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    jpeg = tmp_path / "photo.jpg"
    Image.fromarray(pixels).save(jpeg, format="JPEG")
    http_stub.queue(Reply(body=segment_body()), Reply(body=segment_body()))
    with Client(http_stub.url, model="other") as client:
        client.segment(jpeg)
        client.segment(pixels, mask_format="none")
    by_path, by_pixels = http_stub.seen
    assert by_path.path == "/v1/models/other/segment"
    assert by_path.headers["content-type"] == "image/jpeg"
    assert by_path.body == jpeg.read_bytes()
    assert by_pixels.headers["content-type"] == "image/png"
    assert by_pixels.query["mask_format"] == "none"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(by_pixels.body))), pixels)


def test_server_errors_become_client_errors(http_stub: StubHttpServer) -> None:
    error = {"error": {"code": "model_not_found", "message": "no model 'nope'"}}
    http_stub.queue(Reply(404, error), Reply(502, b"<html>bad gateway</html>"))
    with Client(http_stub.url) as client:
        with pytest.raises(MaskserveClientError) as caught:
            client.segment(b"\xff\xd8\xff", model="nope")
        assert (caught.value.status, caught.value.code) == (404, "model_not_found")
        assert caught.value.message == "no model 'nope'"
        with pytest.raises(MaskserveClientError) as caught:
            client.models()
        assert (caught.value.status, caught.value.code) == (502, "http_502")
        assert "bad gateway" in caught.value.message


def test_overloaded_responses_are_retried_honouring_retry_after(
    http_stub: StubHttpServer,
) -> None:
    busy = {"error": {"code": "overloaded", "message": "queue full"}}
    http_stub.queue(
        Reply(503, busy, {"retry-after": "0"}),
        Reply(429, busy),
        Reply(body=segment_body()),
    )
    with Client(http_stub.url, retry=FAST_RETRY) as client:
        result = client.segment(b"\x89PNG\r\n\x1a\n")
    assert len(result.detections) == 2
    assert len(http_stub.seen) == 3


def test_retries_are_bounded(http_stub: StubHttpServer) -> None:
    busy = Reply(503, {"error": {"code": "overloaded", "message": "queue full"}})
    http_stub.queue(busy, busy, busy, busy)
    with (
        Client(http_stub.url, retry=FAST_RETRY) as client,
        pytest.raises(MaskserveClientError) as e,
    ):
        client.segment(b"x")
    assert (e.value.status, e.value.code) == (503, "overloaded")
    assert len(http_stub.seen) == 3


def test_a_retry_after_beyond_the_policy_gives_up_at_once(http_stub: StubHttpServer) -> None:
    busy = {"error": {"code": "overloaded", "message": "queue full"}}
    http_stub.queue(Reply(503, busy, {"retry-after": "2"}))
    impatient = RetryPolicy(max_retry_after_s=0.5)
    with Client(http_stub.url, retry=impatient) as client, pytest.raises(MaskserveClientError):
        client.segment(b"x")
    http_stub.queue(Reply(503, busy))
    with Client(http_stub.url, retry=NO_RETRY) as client, pytest.raises(MaskserveClientError):
        client.segment(b"x")
    assert len(http_stub.seen) == 2


def test_models_model_and_probes(http_stub: StubHttpServer) -> None:
    info = {
        "name": "yolact_shapes",
        "family": "yolact",
        "class_names": ["circle", "square"],
        "input_size": 320,
        "devices": ["cpu"],
        "dtype": "float32",
        "default_score_threshold": 0.3,
        "default_max_detections": 100,
        "batching": {"max_batch_size": 8, "max_queue_delay_ms": 5.0, "max_queue_size": 64},
    }
    http_stub.queue(
        Reply(body={"models": [info]}),
        Reply(body=info),
        Reply(body={"status": "ok"}),
        Reply(503, {"status": "draining"}),
    )
    with Client(http_stub.url) as client:
        (listed,) = client.models()
        single = client.model("yolact_shapes")
        assert client.healthy()
        assert not client.ready()
    assert listed == single
    assert single.class_names == ("circle", "square")
    assert single.batching is not None and single.batching.max_batch_size == 8
    assert single.default_score_threshold == pytest.approx(0.3)
    paths = [s.path for s in http_stub.seen]
    assert paths == ["/v1/models", "/v1/models/yolact_shapes", "/healthz", "/readyz"]


def test_unreachable_server() -> None:
    with Client("http://127.0.0.1:9", timeout=2.0, retry=NO_RETRY) as client:
        assert not client.ready()
        with pytest.raises(MaskserveClientError) as caught:
            client.models()
    assert (caught.value.status, caught.value.code) == (0, "transport_error")


def test_async_client(http_stub: StubHttpServer) -> None:
    busy = Reply(503, {"error": {"code": "overloaded", "message": "queue full"}})
    http_stub.default = Reply(body=segment_body())
    http_stub.queue(busy)

    async def main() -> list[int]:
        async with AsyncClient(http_stub.url, retry=FAST_RETRY) as client:
            results = await asyncio.gather(
                *(client.segment(b"x", max_detections=i) for i in (1, 2))
            )
            assert await client.ready()
        return [len(r.detections) for r in results]

    assert asyncio.run(main()) == [2, 2]
    segments = [s for s in http_stub.seen if s.path.endswith("/segment")]
    assert len(segments) == 3
    assert {s.query["max_detections"] for s in segments} == {"1", "2"}


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("0", 0.0), ("2.5", 2.5), ("-3", 0.0), ("soon", None), ("", None), (None, None)],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value) == seconds


def test_parse_retry_after_http_date() -> None:
    from datetime import UTC, datetime

    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now) == 30.0


def test_retry_policy_backoff_is_exponential_and_capped() -> None:
    policy = RetryPolicy(max_retries=5, backoff_s=0.5, max_backoff_s=1.5)
    assert [policy.delay(a, 503, None) for a in range(6)] == [0.5, 1.0, 1.5, 1.5, 1.5, None]
    assert policy.delay(0, 500, None) is None
    assert policy.delay(0, 429, "7") == 7.0
