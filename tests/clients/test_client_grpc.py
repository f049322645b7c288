"""The gRPC clients against a scripted gRPC server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import grpc
import numpy as np
import pytest
from client_stubs import BIG, StubGrpcServer, disk_mask, png_bytes
from maskserve_client import AsyncGrpcClient, GrpcClient, MaskserveClientError, RetryPolicy
from maskserve_client.gen import segment_pb2 as pb

IMAGE = png_bytes(np.zeros((30, 45, 3), dtype=np.uint8))
EXPECTED_MASK = disk_mask(30, 45, 15, 22, 10)


@pytest.mark.parametrize("mask_format", ["rle", "runs"])
def test_segment_decodes_both_mask_encodings(grpc_stub: StubGrpcServer, mask_format: str) -> None:
    with GrpcClient(grpc_stub.target) as client:
        result = client.segment(
            IMAGE, score_threshold=0.4, max_detections=3, classes=[1, 4], mask_format=mask_format
        )
    (request,) = grpc_stub.servicer.requests
    assert request.model == "yolact_shapes" and request.image == IMAGE
    assert request.options.HasField("score_threshold")
    assert request.options.score_threshold == pytest.approx(0.4)
    assert request.options.max_detections == 3
    assert list(request.options.classes) == [1, 4]
    assert (result.width, result.height) == (45, 30)
    assert result.timings == {"queue": 0.5, "inference": 0.0, "postprocess": 0.0, "total": 1.5}
    (detection,) = result.detections
    assert (detection.class_id, detection.label, detection.box) == (1, "circle", (1, 2, 30, 40))
    assert np.array_equal(detection.mask(), EXPECTED_MASK)
    assert result.to_json()["detections"][0]["mask"]["size"] == [30, 45]


def test_unset_options_stay_unset_and_none_drops_masks(grpc_stub: StubGrpcServer) -> None:
    with GrpcClient(grpc_stub.target) as client:
        result = client.segment(IMAGE, mask_format="none")
    options = grpc_stub.servicer.requests[0].options
    assert not options.HasField("score_threshold") and not options.HasField("max_detections")
    assert options.mask_format == pb.NONE
    assert not result.detections[0].has_mask


def test_errors_carry_status_and_reason(grpc_stub: StubGrpcServer) -> None:
    with GrpcClient(grpc_stub.target) as client:
        with pytest.raises(MaskserveClientError) as caught:
            client.segment(IMAGE, model="nope")
        assert (caught.value.status, caught.value.code) == (404, "model_not_found")
        with pytest.raises(MaskserveClientError) as caught:
            client.model("nope")
        assert (caught.value.status, caught.value.code) == (404, "not_found")


def test_unavailable_is_retried_within_bounds(grpc_stub: StubGrpcServer) -> None:
    grpc_stub.servicer.unavailable_first = 2
    with GrpcClient(grpc_stub.target, retry=RetryPolicy(max_retries=2, backoff_s=0)) as client:
        assert client.segment(IMAGE).model == "yolact_shapes"
    grpc_stub.servicer.unavailable_first = 2
    once = RetryPolicy(max_retries=1, backoff_s=0)
    with (
        GrpcClient(grpc_stub.target, retry=once) as client,
        pytest.raises(MaskserveClientError) as e,
    ):
        client.segment(IMAGE)
    assert (e.value.status, e.value.code) == (503, "unavailable")
    assert len(grpc_stub.servicer.requests) == 5


def test_models_and_model(grpc_stub: StubGrpcServer) -> None:
    with GrpcClient(grpc_stub.target) as client:
        assert client.wait_ready(timeout=10)
        (listed,) = client.models()
        assert client.model("yolact_shapes") == listed
    assert (listed.name, listed.family, listed.class_names) == (
        "yolact_shapes",
        "yolact",
        ("a", "b"),
    )


def test_messages_over_4_mib_pass_both_ways(grpc_stub: StubGrpcServer) -> None:
    with GrpcClient(grpc_stub.target) as client:
        result = client.segment(b"\0" * (BIG + 1))
    assert len(result.detections[0].label) == BIG


def frames() -> Iterator[tuple[int, bytes]]:
    yield from [(10, IMAGE), (11, b"bad"), (12, b"stale"), (13, IMAGE)]


def test_stream_yields_results_in_order_with_frame_ids(grpc_stub: StubGrpcServer) -> None:
    with GrpcClient(grpc_stub.target) as client:
        results = list(client.stream(frames(), score_threshold=0.2, skip_stale=True))
    assert [r.frame_id for r in results] == [10, 11, 12, 13]
    ok, bad, stale, last = results
    assert ok.ok and last.ok and not bad.ok and stale.skipped
    assert ok.result is not None and np.array_equal(ok.result.detections[0].mask(), EXPECTED_MASK)
    assert bad.error is not None and (bad.error.status, bad.error.code) == (400, "invalid_image")
    assert all(r.latency_s > 0 for r in results)
    first, *rest = grpc_stub.servicer.frames
    assert first.model == "yolact_shapes" and first.skip_stale
    assert first.options.score_threshold == pytest.approx(0.2)
    assert all(not f.model and not f.HasField("options") for f in rest)


def test_a_failing_frame_source_is_reraised(grpc_stub: StubGrpcServer) -> None:
    def broken() -> Iterator[tuple[int, bytes]]:
        yield 1, IMAGE
        raise OSError("camera unplugged")

    with GrpcClient(grpc_stub.target) as client, pytest.raises(OSError, match="camera unplugged"):
        list(client.stream(broken()))


def test_stream_to_a_missing_server_raises_client_error() -> None:
    with GrpcClient("127.0.0.1:9") as client, pytest.raises(MaskserveClientError) as caught:
        list(client.stream(frames(), timeout=5))
    assert caught.value.status in (503, 504)


def test_async_client(grpc_stub: StubGrpcServer) -> None:
    async def aframes() -> AsyncIterator[tuple[int, bytes]]:
        for frame in frames():
            yield frame

    async def main() -> tuple[list[int], list[int], int]:
        async with AsyncGrpcClient(grpc_stub.target) as client:
            single = await client.segment(IMAGE, mask_format="runs")
            from_async = [r.frame_id async for r in client.stream(aframes())]
            from_sync = [r.frame_id async for r in client.stream(frames())]
            with pytest.raises(MaskserveClientError):
                await client.segment(IMAGE, model="nope")
        return from_async, from_sync, len(single.detections)

    assert asyncio.run(main()) == ([10, 11, 12, 13], [10, 11, 12, 13], 1)


def test_async_stream_reraises_a_failing_frame_source(grpc_stub: StubGrpcServer) -> None:
    async def broken() -> AsyncIterator[tuple[int, bytes]]:
        yield 1, IMAGE
        raise OSError("camera unplugged")

    async def main() -> None:
        async with AsyncGrpcClient(grpc_stub.target) as client:
            async for _ in client.stream(broken()):
                pass

    with pytest.raises(OSError, match="camera unplugged"):
        asyncio.run(main())


def test_status_mapping_covers_every_code() -> None:
    from maskserve_client.grpc import HTTP_STATUS

    assert set(HTTP_STATUS) == set(grpc.StatusCode)
