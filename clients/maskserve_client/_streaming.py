"""Bookkeeping of one ``SegmentStream`` call, shared by the sync and asyncio clients."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable

from maskserve_client._convert import GrpcMaskFormat, frame_error_of, options_message, result_of
from maskserve_client.gen import segment_pb2 as pb
from maskserve_client.images import ImageInput, image_bytes
from maskserve_client.types import StreamResult

#: ``(frame_id, image)``: the id is echoed on the frame's result.
Frame = tuple[int, ImageInput]


class StreamState:
    """Send times of frames in flight, matched to results by order (results come in order)."""

    def __init__(self, first: pb.StreamFrame) -> None:
        self.first = first
        self.sent: deque[tuple[int, float]] = deque()
        self.failure: BaseException | None = None

    def message(self, index: int, frame: Frame) -> pb.StreamFrame:
        frame_id, image = frame
        message = pb.StreamFrame(frame_id=int(frame_id), image=image_bytes(image))
        if index == 0:
            message.MergeFrom(self.first)
        self.sent.append((message.frame_id, time.perf_counter()))
        return message

    def result(self, reply: pb.StreamResult) -> StreamResult:
        began = None
        while self.sent and began is None:
            frame_id, at = self.sent.popleft()
            began = at if frame_id == reply.frame_id else None
        outcome = reply.WhichOneof("outcome")
        return StreamResult(
            frame_id=reply.frame_id,
            result=result_of(reply.result) if outcome == "result" else None,
            error=frame_error_of(reply.error) if outcome == "error" else None,
            skipped=reply.skipped,
            latency_s=0.0 if began is None else time.perf_counter() - began,
        )


def first_frame(
    model: str,
    score_threshold: float | None,
    max_detections: int | None,
    classes: Iterable[int] | None,
    mask_format: GrpcMaskFormat,
    skip_stale: bool,
) -> pb.StreamFrame:
    options = options_message(score_threshold, max_detections, classes, mask_format)
    return pb.StreamFrame(model=model, options=options, skip_stale=skip_stale)


async def as_async(frames: Iterable[Frame] | AsyncIterable[Frame]) -> AsyncIterator[Frame]:
    if isinstance(frames, AsyncIterable):
        async for frame in frames:
            yield frame
    else:
        for frame in frames:
            yield frame
