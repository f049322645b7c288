"""Detections → typed results, the same for every protocol.

An :class:`ImageResult` holds its detections in descending score, each with its mask as
an :class:`~maskserve.masks.rle.Rle` (``mask_format="rle"``), a
:class:`~maskserve.masks.polygon.PolygonMask` (``"polygon"``) or None. The protocols
convert them at their edge: JSON in ``maskserve.result_json`` (REST, WebSocket, the
CLI), protobuf in ``api/grpc_codec.py``, tensors in ``api/oip_tensors.py``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from maskserve.masks import encode_detections
from maskserve.masks.polygon import PolygonMask, polygons_of
from maskserve.masks.rle import Rle
from maskserve.models.base import ModelInfo
from maskserve.models.types import Detections
from maskserve.options import SegmentOptions

Mask = Rle | PolygonMask


@dataclass(frozen=True)
class DetectionResult:
    class_id: int
    label: str
    score: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels
    mask: Mask | None
    mask_score: float | None = None


@dataclass(frozen=True)
class ImageResult:
    model: str
    width: int
    height: int
    detections: tuple[DetectionResult, ...]
    timings: Mapping[str, float] = field(default_factory=dict)


def select(
    detections: Detections, options: SegmentOptions, default_threshold: float, default_max: int
) -> Detections:
    """Apply the request's score threshold (strict), class filter and count limit."""
    threshold = default_threshold if options.score_threshold is None else options.score_threshold
    keep = (
        detections.scores > threshold
        if threshold > 0
        else torch.ones_like(detections.scores, dtype=torch.bool)
    )
    if options.classes is not None:
        wanted = torch.tensor(
            sorted(options.classes),
            dtype=detections.class_ids.dtype,
            device=detections.class_ids.device,
        )
        keep &= torch.isin(detections.class_ids, wanted)
    limit = default_max if options.max_detections is None else options.max_detections
    index = torch.nonzero(keep).flatten()[:limit]
    return detections.select(index)


def build_result(model: str, detections: Detections, options: SegmentOptions) -> ImageResult:
    """Encode the (already selected) detections' masks and package them."""
    height, width = detections.image_size
    masks: list[Mask | None]
    if options.mask_format == "rle":
        masks = list(encode_detections(detections).masks)
    elif options.mask_format == "polygon":
        tolerance = options.polygon_tolerance
        masks = [polygons_of(r, tolerance) for r in encode_detections(detections).masks]
    else:
        masks = [None] * len(detections)
    classes = detections.class_ids.tolist()
    scores = detections.scores.tolist()
    boxes = detections.boxes.tolist()
    mask_scores = None if detections.mask_scores is None else detections.mask_scores.tolist()
    results = tuple(
        DetectionResult(
            class_id=int(c),
            label=detections.class_names[c] if c < len(detections.class_names) else str(c),
            score=float(s),
            box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
            mask=m,
            mask_score=None if mask_scores is None else float(mask_scores[i]),
        )
        for i, (c, s, b, m) in enumerate(zip(classes, scores, boxes, masks, strict=True))
    )
    return ImageResult(model=model, width=width, height=height, detections=results)


def finish_result(
    info: ModelInfo, options: SegmentOptions, detections: Detections
) -> tuple[ImageResult, float]:
    """A request's finisher (run by an idle worker or the service's pool): its selection
    after the shared forward pass, then its masks encoded; returns the seconds it took."""
    began = time.perf_counter()
    kept = select(detections, options, info.score_threshold, info.max_detections)
    result = build_result(info.name, kept, options)
    return result, time.perf_counter() - began
