"""Protocol-buffer messages ↔ the client's dataclasses, and gRPC failures → exceptions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import grpc
import numpy as np

from maskserve_client.errors import MaskserveClientError
from maskserve_client.gen import segment_pb2 as pb
from maskserve_client.polygon import Polygon, PolygonMask
from maskserve_client.types import Batching, Detection, ModelInfo, Rle, SegmentResult

GrpcMaskFormat = Literal["rle", "runs", "polygon", "none"]

MASK_FORMATS: dict[str, int] = {
    "rle": pb.RLE_COMPRESSED,
    "runs": pb.RLE_RAW_RUNS,
    "polygon": pb.POLYGON,
    "none": pb.NONE,
}

#: The HTTP status a gRPC status code corresponds to (as grpc-gateway maps them), so
#: :class:`MaskserveClientError` has one meaning of ``status`` for both protocols.
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}
_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}
#: Trailing metadata of a failed call: the server's machine-readable reason, and how long
#: to wait before retrying (milliseconds).
REASON_KEYS = ("maskserve-error-code",)
RETRY_KEYS = ("retry-after-ms", "grpc-retry-pushback-ms")


def options_message(
    score_threshold: float | None,
    max_detections: int | None,
    classes: Iterable[int] | None,
    mask_format: GrpcMaskFormat,
    polygon_tolerance: float | None = None,
) -> pb.SegmentOptions:
    if mask_format not in MASK_FORMATS:
        raise ValueError(f"mask_format must be one of {sorted(MASK_FORMATS)}, got {mask_format!r}")
    options = pb.SegmentOptions(mask_format=MASK_FORMATS[mask_format])  # type: ignore[arg-type]
    if score_threshold is not None:
        options.score_threshold = float(score_threshold)
    if max_detections is not None:
        options.max_detections = int(max_detections)
    if classes is not None:
        options.classes.extend(int(c) for c in classes)
    if polygon_tolerance is not None:
        options.polygon_tolerance = float(polygon_tolerance)
    return options


def rle_of(mask: pb.Mask) -> Rle:
    if mask.WhichOneof("counts") == "runs":
        counts: str | np.ndarray = np.asarray(mask.runs.counts, dtype=np.int64)
    else:
        counts = mask.compressed.decode("ascii")
    return Rle(height=mask.height, width=mask.width, counts=counts)


def polygons_of(mask: pb.Mask) -> PolygonMask:
    parts = tuple(
        Polygon(tuple(p.exterior.coords), tuple(tuple(h.coords) for h in p.holes))
        for p in mask.polygons.polygons
    )
    return PolygonMask(height=mask.height, width=mask.width, polygons=parts)


def detection_of(message: pb.Detection) -> Detection:
    box = message.box
    kind = message.mask.WhichOneof("counts") if message.HasField("mask") else None
    return Detection(
        class_id=message.class_id,
        label=message.label,
        score=message.score,
        box=(box.x1, box.y1, box.x2, box.y2),
        rle=rle_of(message.mask) if message.HasField("mask") and kind != "polygons" else None,
        mask_score=message.mask_score if message.HasField("mask_score") else None,
        polygons=polygons_of(message.mask) if kind == "polygons" else None,
    )


def result_of(message: pb.SegmentResponse) -> SegmentResult:
    timings: dict[str, float] = {}
    if message.HasField("timings"):
        t = message.timings
        timings = {
            "queue": t.queue_seconds,
            "inference": t.inference_seconds,
            "postprocess": t.postprocess_seconds,
            "total": t.total_seconds,
        }
    return SegmentResult(
        model=message.model,
        width=message.width,
        height=message.height,
        detections=[detection_of(d) for d in message.detections],
        timings=timings,
    )


def model_info_of(message: pb.ModelInfo) -> ModelInfo:
    batching = None
    if message.HasField("batching"):
        b = message.batching
        batching = Batching(b.max_batch_size, b.max_queue_delay_ms, b.max_queue_size, b.instances)
    return ModelInfo(
        name=message.name,
        family=message.family,
        class_names=tuple(message.class_names),
        input_size=message.input_size,
        devices=tuple(message.devices),
        dtype=message.dtype,
        default_score_threshold=message.default_score_threshold,
        default_max_detections=message.default_max_detections,
        batching=batching,
        extra=dict(message.extra),
    )


def frame_error_of(message: pb.FrameError) -> MaskserveClientError:
    code = _BY_NUMBER.get(message.code, grpc.StatusCode.UNKNOWN)
    return MaskserveClientError(
        HTTP_STATUS[code], message.reason or code.name.lower(), message.message
    )


def metadata_value(metadata: Any, keys: Iterable[str]) -> str | None:
    """The first of ``keys`` present in gRPC metadata (pairs of key, value), as text."""
    wanted = tuple(keys)
    for key, value in metadata or ():
        if key in wanted:
            return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    return None


def error_of(exc: grpc.RpcError) -> MaskserveClientError:
    """A failed call → the exception, reason from trailing metadata else the status name."""
    code: grpc.StatusCode = exc.code()  # type: ignore[attr-defined]
    details: str = exc.details() or ""  # type: ignore[attr-defined]
    reason = metadata_value(exc.trailing_metadata(), REASON_KEYS)  # type: ignore[attr-defined]
    return MaskserveClientError(
        HTTP_STATUS.get(code, 500), reason or code.name.lower(), details or code.name
    )


def retry_after_of(exc: grpc.RpcError) -> str | None:
    """A server's wish for the retry delay, as a ``Retry-After`` value in seconds.

    maskserve sends ``retry-after-ms``; ``grpc-retry-pushback-ms`` is gRPC's own key.
    """
    metadata = exc.trailing_metadata()  # type: ignore[attr-defined]
    millis_text = metadata_value(metadata, RETRY_KEYS)
    if millis_text is None:
        return None
    try:
        millis = int(millis_text)
    except ValueError:
        return None
    # A negative pushback means "do not retry": ask for longer than any policy waits.
    return str(millis / 1000) if millis >= 0 else "1e12"
