"""The Open Inference Protocol (KServe v2 / Triton) over HTTP, beside ``/v1``.

A thin adapter: every ``/v2`` route goes through the same :class:`SegmentationService`
(batcher, workers, metrics with ``protocol="oip"``) as the native API.  Implemented: server
and model health, metadata, the model configuration tools read, and ``infer`` with the
binary tensor extension (also raw mode and gzip/deflate bodies); the tensors are described
in :mod:`.oip_tensors`.  Errors are ``{"error": "..."}`` with the status the native API
would give.  Not implemented yet: statistics, repository index, the gRPC service.
"""

from __future__ import annotations

import asyncio
import gzip
import time
import zlib
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from maskserve.api.errors import PayloadTooLargeError, message_of, status_of
from maskserve.api.oip_tensors import INPUT, OUTPUTS, encode_response, parse_request
from maskserve.errors import InvalidOptionError, MaskserveError
from maskserve.options import SegmentOptions

if TYPE_CHECKING:
    from maskserve.service import SegmentationService
    from maskserve.settings import Settings

HEADER_LENGTH = "inference-header-content-length"
EXTENSIONS = ["binary_tensor_data", "model_configuration"]
PROTOCOL = "oip"


def oip_error(error: BaseException, overload_status: str) -> JSONResponse:
    return JSONResponse(
        {"error": message_of(error)}, status_code=status_of(error, overload_status).http
    )


def options_of(parameters: dict[str, Any]) -> tuple[SegmentOptions, float | None]:
    """Request parameters → options, and the deadline from ``timeout`` (µs)."""
    classes = parameters.get("classes")
    if isinstance(classes, str):
        classes = [int(c) for c in classes.split(",") if c.strip()] if classes.strip() else None
    try:
        options = SegmentOptions(
            score_threshold=_maybe(float, parameters.get("score_threshold")),
            max_detections=_maybe(int, parameters.get("max_detections")),
            classes=frozenset(int(c) for c in classes) if classes is not None else None,
            mask_format="rle",
        )
        priority = int(parameters.get("priority", 0))
        timeout_us = _maybe(int, parameters.get("timeout"))
    except (TypeError, ValueError) as exc:
        raise InvalidOptionError(f"invalid request parameter: {exc}") from None
    if priority < 0:
        raise InvalidOptionError("priority must be >= 0")
    if timeout_us is not None and timeout_us <= 0:
        raise InvalidOptionError("timeout (microseconds) must be > 0")
    deadline = None if timeout_us is None else time.monotonic() + timeout_us / 1e6
    return options, deadline


def _maybe(kind: type, value: Any) -> Any:
    return None if value is None else kind(value)


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
        from importlib.metadata import PackageNotFoundError, version

        try:
            ours = version("maskserve")
        except PackageNotFoundError:
            ours = "unknown"
        return {"name": "maskserve", "version": ours, "extensions": EXTENSIONS}

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
        try:
            info = self.service.get_model(model)
        except MaskserveError as exc:
            return oip_error(exc, self.settings.overload_status)
        return {
            "name": info.name,
            "versions": ["1"],
            "platform": f"maskserve_{info.family}",
            "inputs": [{"name": INPUT, "datatype": "BYTES", "shape": [-1]}],
            "outputs": [
                {"name": name, "datatype": kind, "shape": shape}
                for name, (kind, shape) in OUTPUTS.items()
            ],
        }

    async def model_config(self, model: str, version: str | None = None) -> Any:
        try:
            config = self.service.model_config(model)
        except MaskserveError as exc:
            return oip_error(exc, self.settings.overload_status)
        batching = config["batching"]
        kinds = {"BYTES": "TYPE_STRING", "FP32": "TYPE_FP32", "INT32": "TYPE_INT32"}
        return {
            "name": config["name"],
            "platform": f"maskserve_{config['family']}",
            "max_batch_size": batching["max_batch_size"],
            "input": [{"name": INPUT, "data_type": "TYPE_STRING", "dims": [1]}],
            "output": [
                {"name": name, "data_type": kinds[kind], "dims": shape[1:]}
                for name, (kind, shape) in OUTPUTS.items()
            ],
            "dynamic_batching": {
                "max_queue_delay_microseconds": int(batching["max_queue_delay_ms"] * 1000),
            },
            "instance_group": [
                {"count": config["instances_per_device"], "kind": _kind(device)}
                for device in config["devices"]
            ],
        }

    async def infer(self, request: Request, model: str, version: str | None = None) -> Response:
        limit = self.settings.max_body_bytes
        try:
            body = await request.body()
            if len(body) > limit:
                raise PayloadTooLargeError(f"body exceeds the limit of {limit} bytes")
            body = _inflate(body, request.headers.get("content-encoding", "").lower(), limit)
            length = request.headers.get(HEADER_LENGTH)
            parsed = parse_request(body, int(length) if length is not None else None)
            options, deadline = options_of(parsed.parameters)
        except (MaskserveError, ValueError) as exc:
            error = exc if isinstance(exc, MaskserveError) else InvalidOptionError(str(exc))
            self.service.count_refused(model, PROTOCOL, error.code)
            return oip_error(error, self.settings.overload_status)
        try:
            results = await asyncio.gather(
                *(
                    self.service.segment(
                        model, image, options, deadline=deadline, protocol=PROTOCOL
                    )
                    for image in parsed.images
                )
            )
        except MaskserveError as exc:
            return oip_error(exc, self.settings.overload_status)
        payload, header_length = encode_response(model, parsed, list(results))
        headers = (
            {} if header_length is None else {"Inference-Header-Content-Length": str(header_length)}
        )
        media = "application/json" if header_length is None else "application/octet-stream"
        return Response(payload, media_type=media, headers=headers)


def _kind(device: str) -> str:
    return "KIND_GPU" if device.startswith("cuda") else "KIND_CPU"


def add_oip_routes(app: FastAPI, service: SegmentationService, settings: Settings) -> None:
    """Register ``/v2``; model routes exist with and without ``/versions/{version}``."""
    oip = OipHttp(service, settings)
    add = app.add_api_route
    add("/v2", oip.server_metadata, methods=["GET"], tags=["oip"])
    add("/v2/health/live", oip.live, methods=["GET"], tags=["oip"])
    add("/v2/health/ready", oip.ready, methods=["GET"], tags=["oip"])
    for prefix in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
        add(prefix, oip.model_metadata, methods=["GET"], tags=["oip"])
        add(prefix + "/ready", oip.model_ready, methods=["GET"], tags=["oip"])
        add(prefix + "/config", oip.model_config, methods=["GET"], tags=["oip"])
        add(prefix + "/infer", oip.infer, methods=["POST"], tags=["oip"])
