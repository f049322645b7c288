"""SegmentStream: ordered results tagged with frame ids, bounded buffering, stale skipping.

The end-to-end tests go through gRPC; the flow-control tests drive the stream pipeline
(``FrameStream``) directly on the running server's loop with the real service, where the
frames it pulls from its input can be counted exactly.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator

import grpc
import numpy as np
import pytest
from api_harness import MODEL, RunningServer
from pycocotools import mask as coco_mask

from maskserve.api.gen import segment_pb2 as pb
from maskserve.api.gen import segment_pb2_grpc as pb_grpc
from maskserve.api.grpc_stream import FrameStream


@pytest.fixture(scope="module")
def stub(server: RunningServer) -> Iterator[pb_grpc.SegmentationStub]:
    with grpc.insecure_channel(server.grpc_target) as channel:
        yield pb_grpc.SegmentationStub(channel)


def masks_of(response: pb.SegmentResponse) -> list[np.ndarray]:
    return [
        coco_mask.decode({"size": [d.mask.height, d.mask.width], "counts": d.mask.compressed})
        for d in response.detections
    ]


def test_results_come_in_order_tagged_with_frame_ids(
    stub: pb_grpc.SegmentationStub, png: bytes
) -> None:
    options = pb.SegmentOptions(score_threshold=0.0, max_detections=10)
    ids = [7, 3, 100, 5, 42, 0]
    frames = [pb.StreamFrame(frame_id=ids[0], image=png, model=MODEL, options=options)]
    frames += [pb.StreamFrame(frame_id=i, image=png) for i in ids[1:]]  # model, options kept
    frames[2].image = b"not an image"
    results = list(stub.SegmentStream(iter(frames), timeout=120))
    assert [r.frame_id for r in results] == ids
    bad = results[2]
    assert bad.WhichOneof("outcome") == "error"
    assert bad.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert bad.error.reason == "invalid_image"
    unary = stub.Segment(pb.SegmentRequest(model=MODEL, image=png, options=options), timeout=60)
    for result in results[:2] + results[3:]:
        assert result.WhichOneof("outcome") == "result" and not result.skipped
        got = masks_of(result.result)
        assert len(got) == len(unary.detections)
        for mine, theirs in zip(got, masks_of(unary), strict=True):
            np.testing.assert_array_equal(mine, theirs)


def test_skip_stale_answers_every_frame_in_order(
    stub: pb_grpc.SegmentationStub, png: bytes
) -> None:
    ids = list(range(1, 13))
    frames = (pb.StreamFrame(frame_id=i, image=png, model=MODEL, skip_stale=True) for i in ids)
    results = list(stub.SegmentStream(frames, timeout=120))
    assert [r.frame_id for r in results] == ids
    for result in results:
        assert result.skipped != (result.WhichOneof("outcome") == "result")
    assert not results[-1].skipped, "the newest frame is never stale"


def test_skip_stale_by_metadata(stub: pb_grpc.SegmentationStub, png: bytes) -> None:
    frames = iter([pb.StreamFrame(frame_id=i, image=png, model=MODEL) for i in range(3)])
    results = list(stub.SegmentStream(frames, metadata=(("skip-stale", "true"),), timeout=120))
    assert [r.frame_id for r in results] == [0, 1, 2] and not results[-1].skipped


def on_server(server: RunningServer, coro) -> object:
    return asyncio.run_coroutine_threadsafe(coro, server.loop).result(timeout=120)


def test_a_slow_reader_stops_the_stream_from_reading(server: RunningServer, png: bytes) -> None:
    """Frames pulled from the client never exceed results taken + max_pending + 1."""
    max_pending = 3

    async def scenario() -> list[tuple[int, int]]:
        pulled = 0

        async def frames() -> AsyncIterator[pb.StreamFrame]:
            nonlocal pulled
            for i in itertools.count():
                pulled += 1
                yield pb.StreamFrame(frame_id=i, image=png, model=MODEL)

        stream = FrameStream(server.server.service, max_pending=max_pending, max_in_flight=1)
        stream.start(frames())
        for _ in range(3):
            await asyncio.sleep(0)  # let the reader run until it blocks
        trace = [(0, pulled)]
        try:
            for taken in range(1, 7):
                result = await stream.next_result()
                assert result is not None and result.frame_id == taken - 1
                assert result.WhichOneof("outcome") == "result"
                trace.append((taken, pulled))
        finally:
            stream.close()
        return trace

    trace = on_server(server, scenario())
    assert trace[0] == (0, max_pending + 1)  # K held, one more read and waiting for room
    assert all(pulled <= taken + max_pending + 1 for taken, pulled in trace)


def test_skip_stale_drops_the_oldest_not_started_frames(server: RunningServer, png: bytes) -> None:
    async def scenario() -> list[pb.StreamResult]:
        async def frames() -> AsyncIterator[pb.StreamFrame]:
            for i in range(10):  # arrive at once, while frame 0 is still in the service
                yield pb.StreamFrame(frame_id=i, image=png, model=MODEL)

        stream = FrameStream(server.server.service, max_pending=3, max_in_flight=1, skip_stale=True)
        stream.start(frames())
        results = []
        try:
            while (result := await stream.next_result()) is not None:
                results.append(result)
        finally:
            stream.close()
        return results

    results = on_server(server, scenario())
    assert [r.frame_id for r in results] == list(range(10))
    assert [r.skipped for r in results] == [False] + [True] * 7 + [False, False]
    assert [r.WhichOneof("outcome") for r in results] == ["result"] + [None] * 7 + ["result"] * 2
