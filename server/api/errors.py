"""Domain errors → protocol status codes, in one table for REST and gRPC alike."""

from __future__ import annotations

import math
from dataclasses import dataclass

import grpc

from maskserve.errors import (
    DeadlineExceededError,
    ImageTooLargeError,
    InferenceError,
    InvalidImageError,
    InvalidOptionError,
    MaskserveError,
    ModelNotFoundError,
    ModelNotReadyError,
    NotAcceptableError,
    OverloadedError,
    UnsupportedMediaTypeError,
)

RETRY_AFTER_S = 1
"""What a refused client is told to wait when nothing better is known (``Retry-After``);
an overloaded model says how long its queue takes to drain (see maskserve.drain_rate)."""
MIN_RETRY_AFTER_S = 0.1
MAX_RETRY_AFTER_S = 60.0


class PayloadTooLargeError(ImageTooLargeError):
    """The request body (not the decoded image) is over ``Settings.max_body_bytes``."""

    code = "payload_too_large"


@dataclass(frozen=True)
class Status:
    http: int
    grpc: grpc.StatusCode
    retry_after: bool = False


# Most specific class first: ImageTooLargeError before its parent InvalidImageError.
_TABLE: tuple[tuple[type[MaskserveError], Status], ...] = (
    (ImageTooLargeError, Status(413, grpc.StatusCode.INVALID_ARGUMENT)),
    (InvalidImageError, Status(400, grpc.StatusCode.INVALID_ARGUMENT)),
    (InvalidOptionError, Status(400, grpc.StatusCode.INVALID_ARGUMENT)),
    (UnsupportedMediaTypeError, Status(415, grpc.StatusCode.INVALID_ARGUMENT)),
    (NotAcceptableError, Status(406, grpc.StatusCode.INVALID_ARGUMENT)),
    (ModelNotFoundError, Status(404, grpc.StatusCode.NOT_FOUND)),
    (ModelNotReadyError, Status(503, grpc.StatusCode.UNAVAILABLE, retry_after=True)),
    (OverloadedError, Status(503, grpc.StatusCode.UNAVAILABLE, retry_after=True)),
    (DeadlineExceededError, Status(504, grpc.StatusCode.DEADLINE_EXCEEDED)),
    (InferenceError, Status(500, grpc.StatusCode.INTERNAL)),
)
_INTERNAL = Status(500, grpc.StatusCode.INTERNAL)
_EXHAUSTED = Status(429, grpc.StatusCode.RESOURCE_EXHAUSTED, retry_after=True)


def status_of(error: BaseException, overload_status: str = "unavailable") -> Status:
    """The status for ``error``; ``overload_status`` is ``Settings.overload_status``."""
    if isinstance(error, OverloadedError) and overload_status == "resource_exhausted":
        return _EXHAUSTED
    for kind, status in _TABLE:
        if isinstance(error, kind):
            return status
    return _INTERNAL


def retry_after_s(error: BaseException) -> float:
    """Seconds a refused client should wait: the error's own estimate, else RETRY_AFTER_S,
    kept within [MIN_RETRY_AFTER_S, MAX_RETRY_AFTER_S]."""
    asked = getattr(error, "retry_after_s", None)
    seconds = RETRY_AFTER_S if asked is None else asked
    return min(MAX_RETRY_AFTER_S, max(MIN_RETRY_AFTER_S, seconds))


def retry_after_header(error: BaseException) -> str:
    """The HTTP ``Retry-After`` value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(retry_after_s(error))))


def retry_after_ms(error: BaseException) -> str:
    """The gRPC ``retry-after-ms`` trailing metadata value."""
    return str(round(retry_after_s(error) * 1000))


def code_of(error: BaseException) -> str:
    """The stable machine-readable name (``invalid_image``, ``overloaded``…)."""
    return error.code if isinstance(error, MaskserveError) else "internal"


def message_of(error: BaseException) -> str:
    """What the client reads; unexpected errors name their type, never a traceback."""
    if isinstance(error, MaskserveError):
        return str(error) or error.code
    return f"internal error: {type(error).__name__}: {error}"
