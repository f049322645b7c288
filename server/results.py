"""Detections → the response schema every API returns.

``{"model", "image": {"width", "height"}, "detections": [{"class_id", "label", "score",
"box": [x1, y1, x2, y2], "mask": {"size": [H, W], "counts": "<compressed RLE>"}}]}``,
detections in descending score. With ``mask_format="polygon"`` each mask is
``{"type": "polygon", "size", "polygons": [{"exterior", "holes"}]}`` (maskserve.masks.polygon).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from maskserve.masks import encode_detections
from maskserve.masks.polygon import rle_to_polygons
from maskserve.models.base import ModelInfo
from maskserve.models.types import Detections
from maskserve.options import SegmentOptions


@dataclass
class DetectionResult:
    class_id: int
    label: str
    score: float
    box: list[float]
    mask: dict[str, Any] | None
    mask_score: float | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "class_id": self.class_id,
            "label": self.label,
            "score": self.score,
            "box": self.box,
            "mask": self.mask,
        }
        if self.mask_score is not None:
            data["mask_score"] = self.mask_score
        return data


@dataclass
class ImageResult:
    model: str
    width: int
    height: int
    detections: list[DetectionResult]
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self, include_timings: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "model": self.model,
            "image": {"width": self.width, "height": self.height},
            "detections": [d.to_json() for d in self.detections],
        }
        if include_timings and self.timings:
            data["timings"] = {k: round(v, 6) for k, v in self.timings.items()}
        return data


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
    masks: list[dict[str, Any] | None]
    if options.mask_format == "rle":
        masks = list(encode_detections(detections).rles)
    elif options.mask_format == "polygon":
        tolerance = options.polygon_tolerance
        masks = [rle_to_polygons(r, tolerance) for r in encode_detections(detections).rles]
    else:
        masks = [None] * len(detections)
    classes = detections.class_ids.tolist()
    scores = detections.scores.tolist()
    boxes = detections.boxes.tolist()
    mask_scores = None if detections.mask_scores is None else detections.mask_scores.tolist()
    results = [
        DetectionResult(
            class_id=int(c),
            label=detections.class_names[c] if c < len(detections.class_names) else str(c),
            score=float(s),
            box=[float(v) for v in b],
            mask=m,
            mask_score=None if mask_scores is None else float(mask_scores[i]),
        )
        for i, (c, s, b, m) in enumerate(zip(classes, scores, boxes, masks, strict=True))
    ]
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
