"""The HTTP port: one FastAPI app, a router per protocol family, errors mapped once.

Adding an HTTP protocol is one adapter module with a router factory plus one line in
:data:`HTTP_ROUTERS` (the gRPC port's seam is ``GRPC_SERVICES`` in ``grpc_servicer.py``).
Every adapter calls the same :class:`~maskserve.service.SegmentationService`; a domain
error that escapes a handler becomes ``{"error": {"code", "message"}}`` with its status
here (the Open Inference Protocol's handlers answer in its own error shape themselves).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from maskserve.api import openapi_doc
from maskserve.api.body_memory import LargeBodyTracker
from maskserve.api.errors import code_of, message_of, retry_after_header, status_of
from maskserve.api.oip_http import oip_router
from maskserve.api.rest import CLIENT_CLOSED, v1_router
from maskserve.api.ws_stream import stream_router
from maskserve.errors import InvalidOptionError, MaskserveError
from maskserve.web import add_web_routes

if TYPE_CHECKING:
    from maskserve.metrics import Metrics
    from maskserve.service import SegmentationService
    from maskserve.settings import Settings

log = logging.getLogger(__name__)

RouterFactory = Callable[["SegmentationService", "Settings", "Metrics"], APIRouter]
HTTP_ROUTERS: list[RouterFactory] = [
    v1_router,  # /v1 (+ /healthz, /readyz, /metrics)
    oip_router,  # /v2: the Open Inference Protocol
    stream_router,  # /v1/models/{model}/stream: WebSocket frame streams
]


def create_http_app(
    service: SegmentationService,
    settings: Settings,
    metrics: Metrics,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    app = FastAPI(
        title="maskserve",
        version="1",
        summary="Instance segmentation: images in, COCO RLE masks out.",
        lifespan=lifespan,
        docs_url=None,  # served offline by maskserve.web, not from a CDN
        redoc_url=None,
    )
    for router in HTTP_ROUTERS:
        app.include_router(router(service, settings, metrics))
    app.add_middleware(LargeBodyTracker, memory=service.memory)  # type: ignore[arg-type]
    add_web_routes(app, settings)  # the browser page at / and Swagger UI at /docs
    _add_error_handlers(app, service, settings.overload_status)
    openapi_doc.install(app)  # the statuses really sent, no 422
    return app


def error_response(error: BaseException, overload_status: str) -> JSONResponse:
    """``{"error": {"code", "message"}}`` with the mapped status (+ Retry-After)."""
    status = status_of(error, overload_status)
    headers = {"Retry-After": retry_after_header(error)} if status.retry_after else None
    body = {"error": {"code": code_of(error), "message": message_of(error)}}
    return JSONResponse(body, status_code=status.http, headers=headers)


def _add_error_handlers(app: FastAPI, service: SegmentationService, overload_status: str) -> None:
    async def domain(request: Request, exc: Exception) -> JSONResponse:
        return error_response(exc, overload_status)

    async def validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors()
        )
        error = InvalidOptionError(problems or "invalid request")
        model = request.path_params.get("model")
        if model is not None and request.url.path.endswith("/segment"):
            service.count_refused(model, "rest", error.code)
        return error_response(error, overload_status)

    async def http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        body = {"error": {"code": _http_code(exc.status_code), "message": str(exc.detail)}}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    async def disconnected(request: Request, exc: Exception) -> Response:
        log.info("client disconnected while sending the body of %s", request.url.path)
        return Response(status_code=CLIENT_CLOSED)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s", request.url.path, exc_info=exc)
        return error_response(exc, overload_status)

    app.add_exception_handler(MaskserveError, domain)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(HTTPException, http)
    app.add_exception_handler(ClientDisconnect, disconnected)
    app.add_exception_handler(Exception, unexpected)


def _http_code(status: int) -> str:
    return {404: "not_found", 405: "method_not_allowed"}.get(status, f"http_{status}")
