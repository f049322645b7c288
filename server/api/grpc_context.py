"""What every gRPC servicer reads from a call's context."""

from __future__ import annotations

import time

import grpc


def deadline_of(context: grpc.aio.ServicerContext) -> float | None:
    """The call's deadline as an absolute ``time.monotonic()`` (None when the client set none)."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining
