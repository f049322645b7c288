"""gRPC ``SegmentStream``'s frames: :class:`~maskserve.api.frame_stream.FrameStream` with
``StreamFrame`` messages in and ``StreamResult`` messages out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from maskserve.api.errors import code_of, message_of, status_of
from maskserve.api.frame_stream import (
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_PENDING,
    Frame,
)
from maskserve.api.frame_stream import FrameStream as _FrameStream
from maskserve.api.gen import segment_pb2 as pb
from maskserve.api.grpc_codec import options_from_proto, result_to_proto
from maskserve.results import ImageResult

if TYPE_CHECKING:
    from maskserve.service import SegmentationService

__all__ = ["DEFAULT_MAX_IN_FLIGHT", "DEFAULT_MAX_PENDING", "FrameStream"]


class FrameStream(_FrameStream[pb.StreamFrame, pb.StreamResult]):
    """One ``SegmentStream`` call: model and options inherited from the previous frame when
    a frame leaves them unset; ``skip_stale`` read from the first frame."""

    protocol = "grpc"

    def __init__(self, service: SegmentationService, **limits: Any) -> None:
        super().__init__(service, **limits)
        self._model = ""
        self._options = pb.SegmentOptions()

    def wants_skip_stale(self, first: pb.StreamFrame) -> bool:
        return first.skip_stale

    def parse(self, message: pb.StreamFrame) -> Frame[pb.StreamResult]:
        self._model = message.model or self._model
        if message.HasField("options"):
            self._options = message.options
        frame: Frame[pb.StreamResult] = Frame(message.frame_id, self._model, message.image, None)
        frame.render = self._options.mask_format
        try:
            frame.options = options_from_proto(self._options)
        except Exception as exc:
            frame.problem = exc
        return frame

    def answer(self, frame: Frame[pb.StreamResult], result: ImageResult) -> pb.StreamResult:
        return pb.StreamResult(
            frame_id=frame.frame_id, result=result_to_proto(result, frame.render)
        )

    def failure(self, frame_id: int, exc: BaseException) -> pb.StreamResult:
        status = status_of(exc, self._overload_status)
        error = pb.FrameError(
            code=status.grpc.value[0], reason=code_of(exc), message=message_of(exc)
        )
        return pb.StreamResult(frame_id=frame_id, error=error)

    def skip(self, frame_id: int) -> pb.StreamResult:
        return pb.StreamResult(frame_id=frame_id, skipped=True)
