"""uvicorn's HTTP protocol, with a connection that never sends a request closed in time,
and the answer past ``max_connections`` in maskserve's error schema.

uvicorn arms its keep-alive timeout only after a response, so a client that connects and
says nothing holds its descriptor for ever: enough of them (1,100 here under a 1,024
descriptor limit) and the server can no longer accept anyone. The protocol below arms the
same timeout (``http_keep_alive_s``) as soon as the connection is made; the first bytes
of a request disarm it, exactly as they do between keep-alive requests.

Past its ``limit_concurrency`` uvicorn answers with a module-level ASGI function of its own
(a plain-text 503, counted nowhere). :func:`install_over_limit_answer` puts maskserve's
answer in its place in both of uvicorn's HTTP implementations: the JSON error body every
other refusal has, ``Retry-After``, and the answer counted in ``maskserve_requests_total``
(model ``_unknown``: it is refused before its request is read).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http import h11_impl, httptools_impl
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from maskserve.inflight import UNKNOWN_MODEL_LABEL
from maskserve.metrics import Metrics

OVER_LIMIT_RETRY_AFTER_S = 1


class GuardedHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
    """uvicorn's own protocol (httptools where installed, else h11), idle-guarded."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )


def over_limit_answer(metrics: Metrics) -> Any:
    """The ASGI answer to a connection past ``max_connections``."""
    body = json.dumps(
        {
            "error": {
                "code": "overloaded",
                "message": "the server is at its connection limit (max_connections); retry later",
            }
        }
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(OVER_LIMIT_RETRY_AFTER_S).encode()),
        (b"connection", b"close"),
    ]

    async def answer(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})
        metrics.requests_total.labels(UNKNOWN_MODEL_LABEL, "http", "overloaded").inc()

    return answer


def install_over_limit_answer(metrics: Metrics) -> None:
    """Replace uvicorn's plain-text over-limit 503 (a module global it looks up per
    request) in both HTTP implementations; the last server started in a process wins."""
    answer = over_limit_answer(metrics)
    httptools_impl.service_unavailable = answer  # type: ignore[attr-defined]
    h11_impl.service_unavailable = answer  # type: ignore[attr-defined]
