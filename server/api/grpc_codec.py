"""Protobuf messages ↔ the service's domain objects (no logic beyond translation)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from maskserve.api.gen import segment_pb2 as pb
from maskserve.errors import InvalidOptionError
from maskserve.masks.polygon import PolygonMask
from maskserve.models.base import ModelInfo
from maskserve.options import DEFAULT_POLYGON_TOLERANCE, SegmentOptions
from maskserve.results import DetectionResult, ImageResult, Mask

_MASK_FORMATS = {
    pb.RLE_COMPRESSED: "rle",
    pb.RLE_RAW_RUNS: "rle",
    pb.NONE: "none",
    pb.POLYGON: "polygon",
}


def options_from_proto(message: pb.SegmentOptions) -> SegmentOptions:
    """Raises InvalidOptionError for out-of-range values or an unknown mask format."""
    if message.mask_format not in _MASK_FORMATS:
        raise InvalidOptionError(f"unknown mask_format {message.mask_format}")
    return SegmentOptions(
        score_threshold=message.score_threshold if message.HasField("score_threshold") else None,
        max_detections=message.max_detections if message.HasField("max_detections") else None,
        classes=frozenset(message.classes) if message.classes else None,
        mask_format=_MASK_FORMATS[message.mask_format],  # type: ignore[arg-type]
        polygon_tolerance=(
            message.polygon_tolerance
            if message.HasField("polygon_tolerance")
            else DEFAULT_POLYGON_TOLERANCE
        ),
    )


def result_to_proto(result: ImageResult, mask_format: int) -> pb.SegmentResponse:
    """``mask_format`` RLE_RAW_RUNS sends the run lengths the encoder kept beside the
    compressed counts."""
    timings = result.timings
    return pb.SegmentResponse(
        model=result.model,
        width=result.width,
        height=result.height,
        detections=[_detection(d, mask_format) for d in result.detections],
        timings=pb.Timings(
            queue_seconds=timings.get("queue", 0.0),
            inference_seconds=timings.get("inference", 0.0),
            postprocess_seconds=timings.get("postprocess", 0.0),
            total_seconds=timings.get("total", 0.0),
        ),
    )


def _detection(detection: DetectionResult, mask_format: int) -> pb.Detection:
    x1, y1, x2, y2 = detection.box
    message = pb.Detection(
        class_id=detection.class_id,
        label=detection.label,
        score=detection.score,
        box=pb.Box(x1=x1, y1=y1, x2=x2, y2=y2),
    )
    if detection.mask_score is not None:
        message.mask_score = detection.mask_score
    if detection.mask is not None and mask_format != pb.NONE:
        message.mask.CopyFrom(_mask(detection.mask, mask_format))
    return message


def _mask(mask: Mask, mask_format: int) -> pb.Mask:
    if isinstance(mask, PolygonMask):
        return pb.Mask(height=mask.height, width=mask.width, polygons=_polygons(mask))
    if mask_format == pb.RLE_RAW_RUNS:  # the encoder's own runs: nothing decompressed
        runs = pb.RunLengths(counts=mask.run_lengths().tolist())
        return pb.Mask(height=mask.height, width=mask.width, runs=runs)
    return pb.Mask(height=mask.height, width=mask.width, compressed=mask.counts)


def _polygons(mask: PolygonMask) -> pb.Polygons:
    """A mask's polygon parts as messages, ring for ring."""
    return pb.Polygons(
        polygons=[
            pb.Polygon(
                exterior=pb.Ring(coords=part.exterior),
                holes=[pb.Ring(coords=hole) for hole in part.holes],
            )
            for part in mask.parts
        ]
    )


def model_info_to_proto(info: ModelInfo, config: Mapping[str, Any]) -> pb.ModelInfo:
    """``config`` is ``SegmentationService.model_config(name)`` (batching settings etc.)."""
    devices = [str(d) for d in config.get("devices") or info.device.split(",")]
    batching = config.get("batching", {})
    return pb.ModelInfo(
        name=info.name,
        family=info.family,
        class_names=list(info.class_names),
        input_size=info.input_size,
        devices=devices,
        dtype=info.dtype,
        default_score_threshold=info.score_threshold,
        default_max_detections=info.max_detections,
        batching=pb.Batching(
            max_batch_size=int(batching.get("max_batch_size", 0)),
            max_queue_delay_ms=float(batching.get("max_queue_delay_ms", 0.0)),
            max_queue_size=int(batching.get("max_queue_size", 0)),
            instances=int(config.get("instances_per_device", 1)) * len(devices),
        ),
        extra={str(k): str(v) for k, v in info.extra.items()},
    )
