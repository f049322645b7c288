"""One benchmark request over REST, gRPC unary or gRPC ``SegmentStream``.

Each target sends with the library's own clients (what an application would use: the
synchronous REST client on threads, the asyncio gRPC client), with retries off, and
reduces the answer to an :class:`Outcome`: the status (the HTTP status over REST, the gRPC
code name over gRPC) and the server's stage timings.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from maskserve_client.errors import MaskserveClientError
from maskserve_client.rest import Client
from maskserve_client.retry import NO_RETRY
from maskserve_client.types import SegmentResult, StreamResult

PROTOCOLS = ("rest", "grpc", "grpc-stream")
OK_LABELS = {"rest": "200", "grpc": "OK", "grpc-stream": "OK"}
#: HTTP status → gRPC code name, for answers that carry only the status (stream frames).
GRPC_NAME_OF_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one request came back with."""

    #: ``"200"``/``"404"`` over REST, ``"OK"``/``"NOT_FOUND"`` over gRPC; the client's own
    #: reason (``"transport_error"``, ``"timeout"``) when no answer arrived.
    status: str
    ok: bool
    #: The server's seconds per stage (``queue``, ``inference``, ``postprocess``, ``total``).
    timings: Mapping[str, float] = field(default_factory=dict)
    #: ``code: message`` of a failure.
    error: str | None = None


def success(protocol: str, result: SegmentResult) -> Outcome:
    return Outcome(OK_LABELS[protocol], True, result.timings)


def failure(protocol: str, exc: MaskserveClientError) -> Outcome:
    """The status label of a failure: the gRPC code itself when the call's error is at hand."""
    if protocol == "rest":
        label = str(exc.status) if exc.status else exc.code
    else:
        cause = exc.__context__
        code = getattr(cause, "code", None)
        name = getattr(code(), "name", None) if callable(code) else None
        label = name or GRPC_NAME_OF_STATUS.get(exc.status, f"HTTP_{exc.status}")
    return Outcome(label, False, {}, f"{exc.code}: {exc.message}")


class Target:
    """Sends one image; ``begin_level``/``end_level`` bracket each load level."""

    protocol = "rest"

    async def ready(self, timeout: float) -> bool:
        raise NotImplementedError

    async def send(self, image: bytes) -> Outcome:
        raise NotImplementedError

    async def begin_level(self, lanes: int, pipelined: bool) -> None:
        """Before a level: ``lanes`` requests at once at most, or pipelined (open loop)."""

    async def end_level(self) -> None:
        """After a level, once every request of it has been answered."""

    async def aclose(self) -> None:
        raise NotImplementedError


class RestTarget(Target):
    """``POST /v1/models/{model}/segment`` with the synchronous client, on threads.

    One thread per connection: on the 2-core development machine a round trip of the
    asyncio httpx client took about 4 ms more than the synchronous one handed to a thread
    (about 1 ms more than aiohttp), time that would be counted as the server's.
    """

    protocol = "rest"

    def __init__(self, url: str, options: Mapping[str, Any], connections: int, **kw: Any) -> None:
        self.options = dict(options)
        self.client = Client(url, retry=NO_RETRY, max_connections=connections, **kw)
        self.threads = ThreadPoolExecutor(connections, thread_name_prefix="bench-rest")

    async def ready(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not await loop.run_in_executor(self.threads, self.client.ready):
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.2)  # polling a server that is still starting
        return True

    def _segment(self, image: bytes) -> Outcome:
        try:
            return success(self.protocol, self.client.segment(image, **self.options))
        except MaskserveClientError as exc:
            return failure(self.protocol, exc)

    async def send(self, image: bytes) -> Outcome:
        return await asyncio.get_running_loop().run_in_executor(self.threads, self._segment, image)

    async def aclose(self) -> None:
        self.threads.shutdown()
        self.client.close()


class GrpcTarget(Target):
    """Unary ``Segment`` calls on one channel."""

    protocol = "grpc"

    def __init__(self, target: str, options: Mapping[str, Any], **kw: Any) -> None:
        from maskserve_client.grpc import AsyncGrpcClient  # grpcio only when asked for

        self.options = dict(options)
        self.client = AsyncGrpcClient(target, retry=NO_RETRY, **kw)

    async def ready(self, timeout: float) -> bool:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                await self.client.models()
                return True
            except MaskserveClientError as exc:
                if exc.status not in (0, 503):
                    return True  # answering (e.g. 401 to a wrong key): requests will tell
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.2)  # polling a server that is still starting

    async def send(self, image: bytes) -> Outcome:
        try:
            return success(self.protocol, await self.client.segment(image, **self.options))
        except MaskserveClientError as exc:
            return failure(self.protocol, exc)

    async def aclose(self) -> None:
        await self.client.close()


class StreamLane:
    """One ``SegmentStream`` call: frames go in through a queue, answers come back in order
    and settle the senders' futures first in, first out."""

    def __init__(self, client: Any, options: Mapping[str, Any]) -> None:
        self._queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        self._waiting: deque[asyncio.Future[StreamResult]] = deque()
        self._ids = itertools.count()
        self.ended = False
        self._reader = asyncio.ensure_future(self._read(client.stream(self._frames(), **options)))

    async def _frames(self) -> AsyncIterator[tuple[int, bytes]]:
        while (frame := await self._queue.get()) is not None:
            yield frame

    async def _read(self, results: AsyncIterator[StreamResult]) -> None:
        ending: BaseException = MaskserveClientError(0, "stream_ended", "the stream ended")
        try:
            async for result in results:
                if self._waiting:
                    waiter = self._waiting.popleft()
                    if not waiter.done():
                        waiter.set_result(result)
        except MaskserveClientError as exc:
            ending = exc
        finally:
            self.ended = True
            while self._waiting:
                waiter = self._waiting.popleft()
                if not waiter.done():
                    waiter.set_exception(ending)

    async def send(self, image: bytes) -> StreamResult:
        if self.ended:
            raise MaskserveClientError(0, "stream_ended", "the stream ended")
        waiter: asyncio.Future[StreamResult] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        self._queue.put_nowait((next(self._ids), image))
        return await waiter

    async def close(self) -> None:
        self._queue.put_nowait(None)
        await self._reader


class GrpcStreamTarget(GrpcTarget):
    """Frames over ``SegmentStream`` calls: in a closed loop each request holds a stream of
    its own (one frame in flight per stream); in an open loop frames are pipelined onto
    the level's streams in turn."""

    protocol = "grpc-stream"

    def __init__(self, target: str, options: Mapping[str, Any], **kw: Any) -> None:
        super().__init__(target, options, **kw)
        self._lanes: list[StreamLane] = []
        self._idle: asyncio.Queue[int] = asyncio.Queue()
        self._turn = itertools.count()
        self._pipelined = False

    async def begin_level(self, lanes: int, pipelined: bool) -> None:
        self._lanes = [StreamLane(self.client, self.options) for _ in range(lanes)]
        self._pipelined = pipelined
        self._idle = asyncio.Queue()
        for index in range(lanes):
            self._idle.put_nowait(index)

    async def send(self, image: bytes) -> Outcome:
        index = next(self._turn) % len(self._lanes) if self._pipelined else await self._idle.get()
        try:
            if self._lanes[index].ended:  # the call failed as a whole: open another
                self._lanes[index] = StreamLane(self.client, self.options)
            result = await self._lanes[index].send(image)
        except MaskserveClientError as exc:
            return failure(self.protocol, exc)
        finally:
            if not self._pipelined:
                self._idle.put_nowait(index)
        if result.result is not None:
            return success(self.protocol, result.result)
        if result.error is not None:
            return failure(self.protocol, result.error)
        return Outcome("SKIPPED", False, {}, "skipped: the server dropped the frame as stale")

    async def end_level(self) -> None:
        lanes, self._lanes = self._lanes, []
        await asyncio.gather(*(lane.close() for lane in lanes))
