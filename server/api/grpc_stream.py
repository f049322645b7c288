"""The per-stream pipeline behind ``SegmentStream``: bounded, ordered, optionally stale-skipping.

A reader task pulls frames from the client and a writer (the RPC handler) yields results.
At most ``max_pending`` frames are held per stream — waiting to start, in the service, or
finished but not yet written — of which at most ``max_in_flight`` are in the service at
once (so consecutive frames still share batches). When the stream is full the reader stops
pulling; gRPC then stops reading the socket and HTTP/2 flow control pushes back on the
client, so a slow reader never grows server memory.

With ``skip_stale``, a frame arriving while the stream is full displaces the oldest frame
that has not started yet: that frame is answered ``skipped=true`` (in its place in the
order) and its image is released. Live video thus stays real-time: the server works on
the newest frames. Only when every held frame has started does the reader wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from maskserve.api.errors import code_of, message_of, status_of
from maskserve.api.gen import segment_pb2 as pb
from maskserve.api.grpc_codec import options_from_proto, result_to_proto
from maskserve.options import SegmentOptions

if TYPE_CHECKING:
    from maskserve.service import SegmentationService

log = logging.getLogger(__name__)

DEFAULT_MAX_PENDING = 4
DEFAULT_MAX_IN_FLIGHT = 2
SKIPPED_PER_PENDING = 8
"""Skipped markers (frame id only) queued behind a slow head frame are capped at this many
per pending slot; past it the reader waits like a full stream does."""


@dataclass(eq=False)
class _Frame:
    frame_id: int
    model: str
    image: bytes
    options: SegmentOptions | None
    mask_format: int
    outcome: pb.StreamResult | None = None
    task: asyncio.Task[None] | None = None


class FrameStream:
    """One ``SegmentStream`` call's state; ``start`` it, then ``next_result`` until None."""

    def __init__(
        self,
        service: SegmentationService,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        skip_stale: bool = False,
        deadline: float | None = None,
        overload_status: str = "unavailable",
    ) -> None:
        if max_pending < 1 or not 1 <= max_in_flight <= max_pending:
            raise ValueError("need 1 <= max_in_flight <= max_pending")
        self._service = service
        self._max_pending = max_pending
        self._max_in_flight = max_in_flight
        self._max_skipped = SKIPPED_PER_PENDING * max_pending
        self._skip_stale = skip_stale
        self._deadline = deadline
        self._overload_status = overload_status
        self._order: deque[_Frame] = deque()  # every frame not yet written, in arrival order
        self._waiting: deque[_Frame] = deque()  # held frames not yet handed to the service
        self._held = 0  # frames in _order that were not skipped
        self._skipped = 0  # skipped markers in _order
        self._in_flight = 0
        self._input_done = False
        self._changed = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None
        self._model = ""
        self._options = pb.SegmentOptions()

    def start(self, frames: AsyncIterator[pb.StreamFrame]) -> None:
        self._reader = asyncio.create_task(self._read(frames))

    async def next_result(self) -> pb.StreamResult | None:
        """The next result in frame order; None once the input ended and all are written."""
        async with self._changed:
            await self._changed.wait_for(self._head_ready)
            if not self._order:
                return None
            frame = self._order.popleft()
            if frame.outcome is not None and frame.outcome.skipped:
                self._skipped -= 1
            else:
                self._held -= 1
            self._changed.notify_all()
        return frame.outcome

    def close(self) -> None:
        """Cancel the reader and every frame still in the service (client gone or done)."""
        if self._reader is not None:
            self._reader.cancel()
        for frame in self._order:
            if frame.task is not None:
                frame.task.cancel()

    def _head_ready(self) -> bool:
        if self._order:
            return self._order[0].outcome is not None
        return self._input_done

    def _has_room(self) -> bool:
        if self._skipped >= self._max_skipped:
            return False
        return self._held < self._max_pending or (self._skip_stale and bool(self._waiting))

    async def _read(self, frames: AsyncIterator[pb.StreamFrame]) -> None:
        try:
            first = True
            async for message in frames:
                if first:
                    self._skip_stale = self._skip_stale or message.skip_stale
                    first = False
                frame = self._frame(message)
                async with self._changed:
                    await self._changed.wait_for(self._has_room)
                    self._admit(frame)
                    self._changed.notify_all()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the client's stream broke; results so far still go out
            log.debug("stream input ended with %s: %s", type(exc).__name__, exc)
        async with self._changed:
            self._input_done = True
            self._changed.notify_all()

    def _frame(self, message: pb.StreamFrame) -> _Frame:
        """Parse options (inheriting model/options from the previous frame when unset)."""
        self._model = message.model or self._model
        if message.HasField("options"):
            self._options = message.options
        frame = _Frame(message.frame_id, self._model, message.image, None, 0)
        frame.mask_format = self._options.mask_format
        try:
            frame.options = options_from_proto(self._options)
        except Exception as exc:
            frame.outcome = self._error(frame.frame_id, exc)
            frame.image = b""
        return frame

    def _admit(self, frame: _Frame) -> None:
        if self._held >= self._max_pending:  # only reachable with skip_stale and a waiting frame
            stale = self._waiting.popleft()
            stale.outcome = pb.StreamResult(frame_id=stale.frame_id, skipped=True)
            stale.image = b""
            self._held -= 1
            self._skipped += 1
        self._order.append(frame)
        self._held += 1
        if frame.outcome is None:
            self._waiting.append(frame)
            self._start_waiting()

    def _start_waiting(self) -> None:
        while self._waiting and self._in_flight < self._max_in_flight:
            frame = self._waiting.popleft()
            self._in_flight += 1
            frame.task = asyncio.create_task(self._run(frame))

    async def _run(self, frame: _Frame) -> None:
        assert frame.options is not None
        try:
            result = await self._service.segment(
                frame.model, frame.image, frame.options, deadline=self._deadline, protocol="grpc"
            )
            outcome = pb.StreamResult(
                frame_id=frame.frame_id, result=result_to_proto(result, frame.mask_format)
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            outcome = self._error(frame.frame_id, exc)
        frame.image = b""
        async with self._changed:
            frame.outcome = outcome
            self._in_flight -= 1
            self._start_waiting()
            self._changed.notify_all()

    def _error(self, frame_id: int, exc: BaseException) -> pb.StreamResult:
        status = status_of(exc, self._overload_status)
        if status.http >= 500 and status.http not in (503, 504):
            log.error("stream frame %d failed", frame_id, exc_info=exc)
        error = pb.FrameError(
            code=status.grpc.value[0], reason=code_of(exc), message=message_of(exc)
        )
        return pb.StreamResult(frame_id=frame_id, error=error)
