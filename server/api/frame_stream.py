"""The per-stream pipeline behind frame streams (gRPC ``SegmentStream``, the WebSocket
``/v1/models/{m}/stream``): bounded, ordered, optionally stale-skipping.

A reader task pulls frames from the client and a writer (the RPC handler) yields results.
At most ``max_pending`` frames are held per stream — waiting to start, in the service, or
finished but not yet written — of which at most ``max_in_flight`` are in the service at
once (so consecutive frames still share batches). When the stream is full the reader stops
pulling; gRPC then stops reading the socket and HTTP/2 flow control pushes back on the
client (uvicorn's WebSocket likewise pauses reading), so a slow reader never grows server
memory.

With ``skip_stale``, a frame arriving while the stream is full displaces the oldest frame
that has not started yet: that frame is answered ``skipped=true`` (in its place in the
order) and its image is released. Live video thus stays real-time: the server works on
the newest frames. Only when every held frame has started does the reader wait.

Shutdown: every frame taken in is held in the service (:meth:`SegmentationService.hold`)
until its answer is written, so a drain waits for it and it is served although the server
drains; a frame taken in once the drain began is refused (``model_not_ready``).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from maskserve.api.errors import code_of, status_of
from maskserve.errors import ModelNotReadyError
from maskserve.options import SegmentOptions
from maskserve.results import ImageResult

if TYPE_CHECKING:
    from maskserve.service import SegmentationService

log = logging.getLogger(__name__)

DEFAULT_MAX_PENDING = 4
DEFAULT_MAX_IN_FLIGHT = 2
SKIPPED_PER_PENDING = 8
"""Skipped markers (frame id only) queued behind a slow head frame are capped at this many
per pending slot; past it the reader waits like a full stream does."""


Message = TypeVar("Message")
Outcome = TypeVar("Outcome")


@dataclass(eq=False)
class Frame(Generic[Outcome]):
    """One received frame; ``render`` is whatever the protocol needs to encode its result
    (e.g. the mask format); ``problem`` refuses it without the service (invalid options);
    ``outcome`` is set when it is answered."""

    frame_id: int
    model: str
    image: bytes
    options: SegmentOptions | None
    render: Any = None
    problem: Exception | None = None
    outcome: Outcome | None = None
    skipped: bool = False
    task: asyncio.Task[None] | None = None


class FrameStream(Generic[Message, Outcome]):
    """One stream's state; ``start`` it, then ``next_result`` until None. A protocol
    subclass parses its messages (:meth:`parse`) and encodes outcomes (:meth:`answer`,
    :meth:`failure`, :meth:`skip`); this class orders, bounds and skips."""

    protocol = "grpc"
    _open: ClassVar[weakref.WeakSet[FrameStream[Any, Any]]] = weakref.WeakSet()

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
        self._order: deque[Frame[Outcome]] = deque()  # every frame not yet written, in order
        self._waiting: deque[Frame[Outcome]] = deque()  # held frames not yet in the service
        self._held = 0  # frames in _order that were not skipped
        self._skipped = 0  # skipped markers in _order
        self._in_flight = 0
        self._input_done = False
        self._closed = False
        self._changed = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None
        self.received = 0  # frames pulled from the client
        self.written = 0  # answers handed to the protocol
        self.reader_waiting = False  # a pulled frame waits for room: the client is not read

    # -- the protocol's part ----------------------------------------------------------

    def parse(self, message: Message) -> Frame[Outcome]:
        """A frame from a message; set its ``problem`` if it is invalid."""
        raise NotImplementedError

    def answer(self, frame: Frame[Outcome], result: ImageResult) -> Outcome:
        raise NotImplementedError

    def failure(self, frame_id: int, exc: BaseException) -> Outcome:
        raise NotImplementedError

    def skip(self, frame_id: int) -> Outcome:
        raise NotImplementedError

    def wants_skip_stale(self, first: Message) -> bool:
        """Whether the first message asks for stale-skipping (gRPC says so in a field)."""
        return False

    # -- ordering, bounds, skipping ---------------------------------------------------

    def start(self, frames: AsyncIterator[Message]) -> None:
        FrameStream._open.add(self)
        self._reader = asyncio.create_task(self._read(frames))

    @classmethod
    def open_streams(cls, service: SegmentationService) -> list[FrameStream[Any, Any]]:
        """The streams of this class started on ``service`` and not closed yet."""
        return [s for s in FrameStream._open if isinstance(s, cls) and s._service is service]

    @property
    def pending(self) -> int:
        """Frames taken in and not yet written (skipped markers included)."""
        return len(self._order)

    async def next_result(self) -> Outcome | None:
        """The next result in frame order; None once the input ended and all are written."""
        async with self._changed:
            await self._changed.wait_for(self._head_ready)
            if not self._order:
                return None
            frame = self._order.popleft()
            if frame.skipped:
                self._skipped -= 1
            else:
                self._held -= 1
            self.written += 1
            self._service.release()
            self._changed.notify_all()
        return frame.outcome

    def close(self) -> None:
        """Cancel the reader and every frame still in the service, and release what the
        stream held (client gone or done)."""
        if self._closed:
            return
        self._closed = True
        FrameStream._open.discard(self)
        if self._reader is not None:
            self._reader.cancel()
        for frame in self._order:
            if frame.task is not None:
                frame.task.cancel()
            self._service.release()
        self._order.clear()
        self._waiting.clear()

    def _head_ready(self) -> bool:
        if self._order:
            return self._order[0].outcome is not None
        return self._input_done

    def _has_room(self, frame: Frame[Outcome]) -> bool:
        """Room for ``frame``; a frame the service will not see displaces no stale one."""
        if self._skipped >= self._max_skipped:
            return False
        if self._held < self._max_pending:
            return True
        served = frame.problem is None and not self._service.draining
        return self._skip_stale and bool(self._waiting) and served

    async def _read(self, frames: AsyncIterator[Message]) -> None:
        try:
            first = True
            async for message in frames:
                if first:
                    self._skip_stale = self._skip_stale or self.wants_skip_stale(message)
                    first = False
                frame = self.parse(message)
                self.received += 1
                async with self._changed:
                    self.reader_waiting = True
                    await self._changed.wait_for(lambda: self._has_room(frame))  # noqa: B023
                    self.reader_waiting = False
                    self._admit(frame)
                    self._changed.notify_all()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the client's stream broke; results so far still go out
            log.debug("stream input ended with %s: %s", type(exc).__name__, exc)
        async with self._changed:
            self._input_done = True
            self._changed.notify_all()

    def _admit(self, frame: Frame[Outcome]) -> None:
        if frame.problem is None and self._service.draining:
            frame.problem = ModelNotReadyError("the server is draining and takes no new frames")
        if frame.problem is not None:
            frame.outcome, frame.image = self.failure(frame.frame_id, frame.problem), b""
            self._service.count_refused(frame.model, self.protocol, code_of(frame.problem))
        elif self._held >= self._max_pending:  # only with skip_stale and a waiting frame
            stale = self._waiting.popleft()
            stale.outcome, stale.skipped = self.skip(stale.frame_id), True
            stale.image = b""
            self._held -= 1
            self._skipped += 1
        self._order.append(frame)
        self._held += 1
        self._service.hold()  # until written: a drain waits for it (see the module doc)
        if frame.outcome is None:
            self._waiting.append(frame)
            self._start_waiting()

    def _start_waiting(self) -> None:
        while self._waiting and self._in_flight < self._max_in_flight:
            frame = self._waiting.popleft()
            self._in_flight += 1
            frame.task = asyncio.create_task(self._run(frame))

    async def _run(self, frame: Frame[Outcome]) -> None:
        assert frame.options is not None
        try:
            result = await self._service.segment(
                frame.model,
                frame.image,
                frame.options,
                deadline=self._deadline,
                protocol=self.protocol,
                held=True,
            )
            outcome = self.answer(frame, result)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if status_of(exc, self._overload_status).http not in (400, 404, 413, 415, 503, 504):
                log.error("stream frame %d failed", frame.frame_id, exc_info=exc)
            outcome = self.failure(frame.frame_id, exc)
        frame.image = b""
        async with self._changed:
            frame.outcome = outcome
            self._in_flight -= 1
            self._start_waiting()
            self._changed.notify_all()
