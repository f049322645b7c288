"""API keys: one check for HTTP (an ASGI middleware) and gRPC (a server interceptor).

Keys come from ``api_keys_file`` (one per line, ``#`` comments) and/or ``api_keys``
(``MASKSERVE_API_KEYS``, comma-separated; a flag would show them in ``ps``).  Only their
SHA-256 digests are kept in memory, and a presented key is compared with every digest in
constant time (``hmac.compare_digest``), so neither memory dumps nor response timing give
a key away.  Clients send ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` over
HTTP and ``authorization: Bearer <key>`` (or ``x-api-key``) metadata over gRPC.

Paths in ``auth_open_paths`` (default ``/healthz``, ``/readyz``, ``/metrics``) and the gRPC
health service stay open, so probes and scrapers need no key.  A refused request gets 401
/ UNAUTHENTICATED with a message that never repeats the key, and is counted in
``maskserve_auth_failures_total{protocol}``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from pathlib import Path
from typing import Any

import grpc

from maskserve.metrics import Metrics

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_GRPC_SERVICES = ("/grpc.health.v1.Health/",)
MESSAGE = "a valid API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key'"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class ApiKeys:
    """The accepted keys, as digests only."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = [_digest(k) for k in (k.strip() for k in keys) if k]

    @classmethod
    def load(cls, file: Path | None, listed: Iterable[str] | None) -> ApiKeys:
        keys = list(listed or [])
        if file is not None:
            try:
                lines = file.read_text().splitlines()
            except OSError as exc:
                raise ValueError(f"api_keys_file {file.name}: {exc.strerror or exc}") from None
            keys += [line.split("#", 1)[0].strip() for line in lines]
        return cls(keys)

    def __bool__(self) -> bool:
        return bool(self._digests)

    def accepts(self, presented: str | None) -> bool:
        if not presented:
            return False
        digest = _digest(presented)
        found = False
        for known in self._digests:  # no early exit: the time does not depend on the match
            found |= hmac.compare_digest(digest, known)
        return found


def presented_key(authorization: str | None, api_key: str | None) -> str | None:
    """The key from ``Authorization: Bearer …`` or ``X-API-Key``."""
    if api_key:
        return api_key.strip()
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer":
            return token.strip()
    return None


def websocket_query_key(scope: Scope) -> str | None:
    """``?api_key=...`` of a WebSocket URL (only there: browsers cannot set headers on a
    WebSocket; HTTP clients can). It is taken out of the scope's query string, so neither
    the app nor uvicorn's connection log line sees it."""
    query = scope.get("query_string", b"").decode("latin-1")
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    values = [value for name, value in pairs if name == "api_key"]
    if not values:
        return None
    rest = [(name, value) for name, value in pairs if name != "api_key"]
    scope["query_string"] = urllib.parse.urlencode(rest).encode("latin-1")
    return values[0]


class ApiKeyMiddleware:
    """ASGI: HTTP and WebSocket requests outside ``open_paths`` need a key."""

    def __init__(
        self, app: ASGIApp, keys: ApiKeys, open_paths: Iterable[str], metrics: Metrics
    ) -> None:
        self.app, self.keys, self.metrics = app, keys, metrics
        self.open_paths = frozenset(open_paths)
        self.open_prefixes = tuple(p for p in self.open_paths if len(p) > 1 and p.endswith("/"))

    def _open(self, path: str) -> bool:
        return path in self.open_paths or path.startswith(self.open_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self._open(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        key = presented_key(headers.get("authorization"), headers.get("x-api-key"))
        if key is None and scope["type"] == "websocket":  # browsers cannot set headers there
            key = websocket_query_key(scope)
        if self.keys.accepts(key):
            await self.app(scope, receive, send)
            return
        self.metrics.auth_failures.labels("ws" if scope["type"] == "websocket" else "rest").inc()
        body = json.dumps({"error": {"code": "unauthenticated", "message": MESSAGE}}).encode()
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", b'Bearer realm="maskserve"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """gRPC: every service but health needs ``authorization`` or ``x-api-key`` metadata."""

    def __init__(self, keys: ApiKeys, metrics: Metrics) -> None:
        self.keys, self.metrics = keys, metrics

        async def refuse(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, MESSAGE)

        async def refuse_stream(requests: Any, context: grpc.aio.ServicerContext) -> Any:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, MESSAGE)

        self._unary = grpc.unary_unary_rpc_method_handler(refuse)
        self._stream = grpc.stream_stream_rpc_method_handler(refuse_stream)
        self._unary_stream = grpc.unary_stream_rpc_method_handler(refuse)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = details.method or ""
        if method.startswith(OPEN_GRPC_SERVICES):
            return await continuation(details)
        metadata = {k.lower(): v for k, v in (details.invocation_metadata or ())}
        key = presented_key(_text(metadata.get("authorization")), _text(metadata.get("x-api-key")))
        if self.keys.accepts(key):
            return await continuation(details)
        self.metrics.auth_failures.labels("grpc").inc()
        handler = await continuation(details)
        if handler is None:
            return None
        if handler.request_streaming and handler.response_streaming:
            return self._stream
        if handler.response_streaming:
            return self._unary_stream
        return self._unary


def _text(value: str | bytes | None) -> str | None:
    return value.decode("latin-1") if isinstance(value, bytes) else value
