"""uvicorn's HTTP protocol, with a connection that never sends a request closed in time.

uvicorn arms its keep-alive timeout only after a response, so a client that connects and
says nothing holds its descriptor for ever: enough of them (1,100 here under a 1,024
descriptor limit) and the server can no longer accept anyone. The protocol below arms the
same timeout (``http_keep_alive_s``) as soon as the connection is made; the first bytes
of a request disarm it, exactly as they do between keep-alive requests.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.auto import AutoHTTPProtocol


class GuardedHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
    """uvicorn's own protocol (httptools where installed, else h11), idle-guarded."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )
