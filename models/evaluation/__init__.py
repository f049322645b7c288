"""Accuracy evaluation of instance-segmentation models (COCO mask and box AP)."""

from maskserve.models.evaluation.coco_eval import (
    METRIC_KEYS,
    Predictor,
    evaluate_model,
    evaluate_predictions,
    read_rgb,
    to_coco_results,
)
from maskserve.models.evaluation.recall import shapes_found

__all__ = [
    "METRIC_KEYS",
    "Predictor",
    "evaluate_model",
    "evaluate_predictions",
    "read_rgb",
    "shapes_found",
    "to_coco_results",
]
