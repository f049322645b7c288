"""Typed results → the JSON every HTTP answer (and ``maskserve predict``) carries.

``{"model", "image": {"width", "height"}, "detections": [{"class_id", "label", "score",
"box": [x1, y1, x2, y2], "mask": {"size": [H, W], "counts": "<compressed RLE>"}}],
"timings": {...}}``; with ``mask_format=polygon`` a mask is ``{"type": "polygon",
"size", "polygons": [{"exterior", "holes"}]}`` (see ``maskserve.masks.polygon``).
"""

from __future__ import annotations

from typing import Any

from maskserve.masks.polygon import PolygonMask
from maskserve.masks.rle import Rle
from maskserve.results import DetectionResult, ImageResult, Mask


def result_json(result: ImageResult, include_timings: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "model": result.model,
        "image": {"width": result.width, "height": result.height},
        "detections": [detection_json(d) for d in result.detections],
    }
    if include_timings and result.timings:
        data["timings"] = {k: round(v, 6) for k, v in result.timings.items()}
    return data


def detection_json(detection: DetectionResult) -> dict[str, Any]:
    data: dict[str, Any] = {
        "class_id": detection.class_id,
        "label": detection.label,
        "score": detection.score,
        "box": list(detection.box),
        "mask": mask_json(detection.mask),
    }
    if detection.mask_score is not None:
        data["mask_score"] = detection.mask_score
    return data


def mask_json(mask: Mask | None) -> dict[str, Any] | None:
    if mask is None:
        return None
    if isinstance(mask, Rle):
        return mask.to_coco()
    assert isinstance(mask, PolygonMask)
    return {
        "type": "polygon",
        "size": [mask.height, mask.width],
        "polygons": [
            {"exterior": list(part.exterior), "holes": [list(h) for h in part.holes]}
            for part in mask.parts
        ],
    }
