"""The Open Inference Protocol (KServe v2 / Triton) over HTTP, beside ``/v1``.

A thin adapter: every ``/v2`` route goes through the same :class:`SegmentationService`
(batcher, workers, metrics with ``protocol="oip"``) as the native API.  Implemented: server
and model health, metadata, the model configuration tools read, statistics, the repository
index, and ``infer`` with the binary tensor extension (also raw mode and gzip/deflate
bodies); the answers come from :mod:`.oip_core`, the tensors from :mod:`.oip_tensors`
(image models) and :mod:`.oip_raw_tensors` (tensor models).
Errors are ``{"error": "..."}`` with the status the native API would give.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from maskserve.api import oip_core
from maskserve.api.body import read_body, within
from maskserve.api.errors import PayloadTooLargeError, message_of, status_of
from maskserve.api.oip_core import PROTOCOL
from maskserve.api.oip_raw_tensors import (
    TensorRequest,
    encode_tensor_response,
    parse_tensor_request,
)
from maskserve.api.oip_tensors import OipRequest, encode_response, parse_request
from maskserve.errors import InvalidOptionError, MaskserveError

if TYPE_CHECKING:
    from maskserve.metrics import Metrics
    from maskserve.service import SegmentationService
    from maskserve.settings import Settings

HEADER_LENGTH = "inference-header-content-length"


def oip_error(error: BaseException, overload_status: str) -> JSONResponse:
    return JSONResponse(
        {"error": message_of(error)}, status_code=status_of(error, overload_status).http
    )


def _inflate(body: bytes, encoding: str, limit: int) -> bytes:
    if encoding in ("", "identity"):
        return body
    try:
        if encoding == "gzip":
            data = gzip.decompress(body)
        elif encoding == "deflate":
            data = zlib.decompress(body)
        else:
            raise InvalidOptionError(f"unsupported Content-Encoding {encoding!r}")
    except (OSError, zlib.error, EOFError) as exc:
        raise InvalidOptionError(f"the {encoding} body could not be decompressed: {exc}") from None
    if len(data) > limit:
        raise PayloadTooLargeError(f"decompressed body exceeds the limit of {limit} bytes")
    return data


class OipHttp:
    def __init__(self, service: SegmentationService, settings: Settings) -> None:
        self.service, self.settings = service, settings

    async def server_metadata(self) -> dict[str, Any]:
        return oip_core.server_metadata()

    async def live(self) -> dict[str, bool]:
        return {"live": True}

    async def ready(self) -> JSONResponse:
        ready = self.service.ready
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    async def model_ready(self, model: str, version: str | None = None) -> JSONResponse:
        try:
            self.service.get_model(model)
        except MaskserveError as exc:
            return JSONResponse({"name": model, "ready": False}, status_code=status_of(exc).http)
        return JSONResponse({"name": model, "ready": True})

    async def model_metadata(self, model: str, version: str | None = None) -> Any:
        return self._answer(oip_core.model_metadata, model)

    async def model_config(self, model: str, version: str | None = None) -> Any:
        return self._answer(oip_core.model_config, model)

    async def model_stats(self, model: str, version: str | None = None) -> Any:
        return self._answer(oip_core.statistics, model)

    async def all_stats(self) -> Any:
        return oip_core.statistics(self.service, None)

    async def repository_index(self, request: Request) -> Any:
        body = await request.body()
        try:
            query = json.loads(body) if body.strip() else {}
            ready_only = bool(query.get("ready", False)) if isinstance(query, dict) else False
        except json.JSONDecodeError as exc:
            return oip_error(InvalidOptionError(f"invalid JSON: {exc}"), "unavailable")
        return oip_core.repository_index(self.service, ready_only)

    def _answer(self, build: Callable[[SegmentationService, str], Any], model: str) -> Any:
        try:
            return build(self.service, model)
        except MaskserveError as exc:
            return oip_error(exc, self.settings.overload_status)

    async def infer(self, request: Request, model: str, version: str | None = None) -> Response:
        limit = self.settings.max_body_bytes
        try:
            # the upload is bounded by the server's timeout: the request's own (a parameter
            # inside the body) is only known once the body is in
            upload_by = time.monotonic() + self.settings.request_timeout_s
            body = await within(upload_by, read_body(request, limit))
            body = _inflate(body, request.headers.get("content-encoding", "").lower(), limit)
            length = request.headers.get(HEADER_LENGTH)
            header_length = int(length) if length is not None else None
            signature = self.service.tensor_signature(model)
            parsed: OipRequest | TensorRequest = (
                parse_request(body, header_length)
                if signature is None
                else parse_tensor_request(body, header_length, signature)
            )
            options, deadline, priority = oip_core.request_options(parsed.parameters)
        except (MaskserveError, ValueError) as exc:
            error = exc if isinstance(exc, MaskserveError) else InvalidOptionError(str(exc))
            self.service.count_refused(model, PROTOCOL, error.code)
            return oip_error(error, self.settings.overload_status)
        try:
            if isinstance(parsed, TensorRequest):
                outputs = await self.service.infer_tensors(
                    model, parsed.inputs, deadline=deadline, protocol=PROTOCOL, priority=priority
                )
                payload, header_length = encode_tensor_response(model, parsed, outputs)
            else:
                results = await asyncio.gather(
                    *(
                        self.service.segment(
                            model,
                            image,
                            options,
                            deadline=deadline,
                            protocol=PROTOCOL,
                            priority=priority,
                        )
                        for image in parsed.images
                    )
                )
                payload, header_length = encode_response(model, parsed, list(results))
        except MaskserveError as exc:
            return oip_error(exc, self.settings.overload_status)
        headers = (
            {} if header_length is None else {"Inference-Header-Content-Length": str(header_length)}
        )
        media = "application/json" if header_length is None else "application/octet-stream"
        return Response(payload, media_type=media, headers=headers)


def oip_router(service: SegmentationService, settings: Settings, metrics: Metrics) -> APIRouter:
    """``/v2``; model routes exist with and without ``/versions/{version}``."""
    oip = OipHttp(service, settings)
    router = APIRouter(tags=["oip"])
    add = router.add_api_route
    add("/v2", oip.server_metadata, methods=["GET"])
    add("/v2/health/live", oip.live, methods=["GET"])
    add("/v2/health/ready", oip.ready, methods=["GET"])
    add("/v2/models/stats", oip.all_stats, methods=["GET"])
    add("/v2/repository/index", oip.repository_index, methods=["POST"])
    for prefix in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
        add(prefix, oip.model_metadata, methods=["GET"])
        add(prefix + "/ready", oip.model_ready, methods=["GET"])
        add(prefix + "/config", oip.model_config, methods=["GET"])
        add(prefix + "/stats", oip.model_stats, methods=["GET"])
        add(prefix + "/infer", oip.infer, methods=["POST"])
    return router
