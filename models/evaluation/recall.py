"""Instance recall on freshly drawn synthetic images: how many drawn shapes a model finds.

A cheaper, more direct check than COCO AP: a drawn shape counts as found when some
detection of the same class above ``min_score`` overlaps its exact mask with IoU ≥ 0.5.
Shapes smaller than ``min_area`` pixels (mostly hidden by others) are not counted.
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

from maskserve.models.evaluation.coco_eval import Predictor
from maskserve.models.synthetic import generate_sample

MATCH_IOU = 0.5


def _decode(detections: list[dict]) -> list[np.ndarray]:
    return [
        mask_utils.decode({"size": d["mask"]["size"], "counts": d["mask"]["counts"]}).astype(bool)
        for d in detections
    ]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def shapes_found(
    predict: Predictor,
    seed: int,
    images: int,
    size: tuple[int, int] = (300, 400),
    min_area: int = 300,
    min_score: float = 0.3,
) -> tuple[int, int]:
    """(found, counted) over ``images`` generated images of ``size`` (H, W)."""
    rng = np.random.default_rng(seed)
    found = counted = 0
    for _ in range(images):
        sample = generate_sample(rng, *size)
        kept = [d for d in predict(sample.image) if d["score"] > min_score]
        masks, classes = _decode(kept), [d["class_id"] for d in kept]
        for truth, class_id in zip(sample.masks, sample.class_ids.tolist(), strict=True):
            if truth.sum() < min_area:
                continue
            counted += 1
            found += any(
                c == class_id and _iou(m, truth) >= MATCH_IOU
                for m, c in zip(masks, classes, strict=True)
            )
    return found, counted
