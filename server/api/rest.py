"""The REST face of the service (FastAPI): thin handlers, errors mapped in one place.

Any decodable image is answered, however small: a 1×1 image gets 200 with whatever the
model finds in it (normally nothing). Refusals are 4xx with ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from maskserve.api import openapi_doc, schemas
from maskserve.api.body import limited, read_body, within
from maskserve.api.negotiation import JSON, OPENAPI_RESPONSES, answer_type
from maskserve.errors import (
    InvalidImageError,
    InvalidOptionError,
    MaskserveError,
    UnsupportedMediaTypeError,
)
from maskserve.options import DEFAULT_POLYGON_TOLERANCE, MaskFormat, SegmentOptions
from maskserve.overlay import render_overlay
from maskserve.result_json import detection_json, result_json

if TYPE_CHECKING:
    from maskserve.metrics import Metrics
    from maskserve.results import ImageResult
    from maskserve.service import SegmentationService
    from maskserve.settings import Settings

log = logging.getLogger(__name__)

IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")
MULTIPART = "multipart/form-data"
CLIENT_CLOSED = 499  # nginx's convention; nobody reads it, the connection is gone
# 429 or 503 for a full queue: Settings.overload_status; 503 also while not ready/draining
_ERRORS = openapi_doc.error_responses(schemas.ErrorBody, (400, 404, 413, 415, 429, 500, 503, 504))
_BODY_DOC = {
    "requestBody": {
        "required": True,
        "description": "The encoded image as the raw body, or a multipart field `image`.",
        "content": {
            **{t: {"schema": {"type": "string", "format": "binary"}} for t in IMAGE_TYPES},
            MULTIPART: {
                "schema": {
                    "type": "object",
                    "properties": {"image": {"type": "string", "format": "binary"}},
                    "required": ["image"],
                }
            },
        },
    }
}


class RestApi:
    """Route handlers bound to one service; :func:`v1_router` routes them."""

    def __init__(self, service: SegmentationService, settings: Settings, metrics: Metrics):
        self.service = service
        self.settings = settings
        self.metrics = metrics

    async def segment(
        self,
        request: Request,
        model: str,
        score_threshold: float | None = Query(None, description="in [0, 1]"),
        max_detections: int | None = Query(None, description="at most this many detections"),
        classes: str | None = Query(None, description="comma-separated class ids, e.g. 0,2"),
        mask_format: Literal["rle", "polygon", "none"] = Query(
            "rle", description="rle, polygon (with holes) or none"
        ),
        polygon_tolerance: float | None = Query(
            None, description="polygon simplification in pixels, in [0, 100]; default 1, 0 exact"
        ),
        timeout: float | None = Query(None, description="seconds; shortens the deadline"),
        answer_format: Literal["json", "png", "jpeg", "webp"] | None = Query(
            None, alias="format", description="json, or the overlay picture; else by Accept"
        ),
    ) -> Response:
        """Segment one image: raw body (image/jpeg, image/png, image/webp) or multipart.

        The answer is the detections as JSON, or with ``Accept: image/png`` (``image/jpeg``,
        ``image/webp``) or ``?format=png|jpeg|webp`` the overlay picture."""
        try:
            media = answer_type(request.headers.get("accept"), answer_format)
            options = _options(
                score_threshold, max_detections, classes, mask_format, polygon_tolerance, media
            )
            deadline = self._deadline(timeout)
            upload_by = deadline or time.monotonic() + self.settings.request_timeout_s
            image = await within(upload_by, read_image(request, self.settings.max_body_bytes))
        except MaskserveError as exc:  # refused before the service: counted here
            self.service.count_refused(model, "rest", exc.code)
            raise
        work = self.service.segment(model, image, options, deadline=deadline, protocol="rest")
        result = await until_disconnect(request, work)
        if result is None:
            return Response(status_code=CLIENT_CLOSED)
        if media == JSON:
            return JSONResponse(result_json(result), headers=_VARY)
        detections = [detection_json(d) for d in result.detections]
        limit = self.settings.max_pixels
        picture = await self.service.offload(render_overlay, image, detections, media, limit)
        return Response(picture, media_type=media, headers=_VARY)

    def _deadline(self, timeout: float | None) -> float | None:
        if timeout is None:
            return None
        if not timeout > 0:
            raise InvalidOptionError(f"timeout must be > 0 seconds, got {timeout}")
        return time.monotonic() + min(timeout, self.settings.request_timeout_s)

    async def list_models(self) -> dict[str, Any]:
        return {"models": [self.service.model_config(m.name) for m in self.service.list_models()]}

    async def get_model(self, model: str) -> dict[str, Any]:
        return self.service.model_config(model)

    async def healthz(self) -> dict[str, str]:
        """The process is alive (says nothing about models)."""
        return {"status": "alive"}

    async def readyz(self) -> JSONResponse:
        """200 once every model warmed up; 503 while starting or draining."""
        if self.service.ready:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not_ready"}, status_code=503)

    async def metrics_text(self) -> Response:
        return Response(self.metrics.render(), media_type=self.metrics.content_type)


_VARY = {"Vary": "Accept"}  # the same URL answers JSON or a picture


def _options(
    score_threshold: float | None,
    max_detections: int | None,
    classes: str | None,
    mask_format: MaskFormat,
    polygon_tolerance: float | None,
    media: str,
) -> SegmentOptions:
    """The request's options; a picture is drawn from RLE masks whatever ``mask_format``
    asks (``none`` still draws boxes only)."""
    options = SegmentOptions(
        score_threshold=score_threshold,
        max_detections=max_detections,
        classes=parse_classes(classes),
        mask_format=mask_format,
        polygon_tolerance=(
            DEFAULT_POLYGON_TOLERANCE if polygon_tolerance is None else polygon_tolerance
        ),
    )
    if media != JSON and mask_format == "polygon":
        return dataclasses.replace(options, mask_format="rle")
    return options


def parse_classes(text: str | None) -> frozenset[int] | None:
    if text is None or not text.strip():
        return None
    try:
        ids = frozenset(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise InvalidOptionError(
            f"classes must be comma-separated integer class ids, got {text!r}"
        ) from None
    if not ids:  # "classes=,,," would otherwise mean "no class at all", unlike "classes="
        raise InvalidOptionError(f"classes names no class id: {text!r}; omit it for all")
    return ids


async def read_image(request: Request, limit: int) -> bytes:
    """The image bytes of a raw or multipart body; 415 for other types, 413 over ``limit``."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media in IMAGE_TYPES:
        return await read_body(request, limit)
    if media == MULTIPART:
        return await _multipart_image(limited(request, limit), limit)
    raise UnsupportedMediaTypeError(
        f"content type {media or '(none)'!r} is not supported; send {', '.join(IMAGE_TYPES)} "
        f"or {MULTIPART} with an 'image' field"
    )


async def _multipart_image(request: Request, limit: int) -> bytes:
    """The ``image`` field, parsed as the body streams in (file parts spool to disk past
    1 MB), so a large upload is held once, as the image bytes, not also as the body."""
    try:
        form = await request.form(max_files=1, max_part_size=limit)
    except HTTPException as exc:  # python-multipart's parse errors, as Starlette reports them
        raise InvalidImageError(f"malformed multipart body: {exc.detail}") from None
    try:
        field = form.get("image")
        if not isinstance(field, UploadFile):
            raise InvalidImageError("multipart body needs a file field named 'image'")
        return await field.read()
    finally:
        await form.close()


async def until_disconnect(request: Request, work: Awaitable[ImageResult]) -> ImageResult | None:
    """Await ``work`` unless the client disconnects first: then cancel it and return None.

    The body has been read, so the next ASGI message can only be ``http.disconnect``.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
    if task.done() and not task.cancelled():
        return task.result()
    log.info("client disconnected; request cancelled")
    return None


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def v1_router(service: SegmentationService, settings: Settings, metrics: Metrics) -> APIRouter:
    """``/v1`` (segment, models) and the server's own ``/healthz``, ``/readyz``, ``/metrics``."""
    api = RestApi(service, settings, metrics)
    router = APIRouter()
    add = router.add_api_route
    add(
        "/v1/models/{model}/segment",
        api.segment,
        methods=["POST"],
        response_model=schemas.SegmentResponse,
        responses={**_ERRORS, **OPENAPI_RESPONSES},
        openapi_extra=_BODY_DOC,
    )
    add("/v1/models", api.list_models, methods=["GET"], response_model=schemas.ModelList)
    add("/v1/models/{model}", api.get_model, methods=["GET"], response_model=schemas.ModelDetail)
    add("/healthz", api.healthz, methods=["GET"], response_model=schemas.Status)
    add("/readyz", api.readyz, methods=["GET"], response_model=schemas.Status)
    add("/metrics", api.metrics_text, methods=["GET"], response_class=Response)
    return router
