"""Reading a request body within bounds: its size (refused by ``Content-Length`` before
it is read, counted while it streams) and its time (the deadline covers the upload)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from fastapi import Request
from starlette.types import Message, Receive

from maskserve.api.errors import PayloadTooLargeError
from maskserve.errors import DeadlineExceededError


async def within(deadline: float, reading: Awaitable[bytes]) -> bytes:
    """The deadline covers the upload: a body still trickling in when it passes gets 504
    (and its connection is closed) instead of holding a connection for ever."""
    try:
        async with asyncio.timeout(deadline - time.monotonic()):
            return await reading
    except TimeoutError:
        raise DeadlineExceededError("the deadline passed while the body was uploading") from None


def _refuse_declared(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"body of {declared} bytes exceeds the limit of {limit} bytes")


def limited(request: Request, limit: int) -> Request:
    """The same request, its body counted as a parser streams it (413 past ``limit``):
    for parsers that read the stream themselves, so the body is never held whole."""
    _refuse_declared(request, limit)

    def check(size: int) -> None:
        if size > limit:
            raise PayloadTooLargeError(f"body exceeds the limit of {limit} bytes")

    return Request(request.scope, counted(request.receive, check))


def counted(receive: Receive, observe: Callable[[int], None]) -> Receive:
    """``receive``, calling ``observe`` with the body bytes received so far after each
    body message (it may raise to stop the request)."""
    size = 0

    async def counting() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            observe(size)
        return message

    return counting


async def read_body(request: Request, limit: int) -> bytes:
    """Refuse by Content-Length before reading, and count while streaming (chunked bodies)."""
    _refuse_declared(request, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
