"""COCO mask/box AP for the server's detections, via pycocotools' COCOeval."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

METRIC_KEYS: tuple[str, ...] = (
    "mask_AP",
    "mask_AP50",
    "mask_AP75",
    "box_AP",
    "box_AP50",
    "box_AP75",
)

Predictor = Callable[[np.ndarray], list[dict[str, Any]]]
"""RGB uint8 [H, W, 3] image → the server's per-detection JSON list."""


def _quiet_coco(annotations_path: Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(annotations_path))


def _segm_results(predictions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Results without ``bbox``, so loadRes takes the mask path (area = mask area)."""
    return [{k: v for k, v in p.items() if k != "bbox"} for p in predictions]


def _bbox_results(predictions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Results without ``segmentation``; a missing bbox is taken from the mask."""
    out = []
    for p in predictions:
        entry = {k: v for k, v in p.items() if k != "segmentation"}
        if "bbox" not in entry:
            entry["bbox"] = [float(v) for v in mask_utils.toBbox(p["segmentation"])]
        out.append(entry)
    return out


def _run(gt: COCO, results: list[dict[str, Any]], iou_type: str, ids: list[int]) -> list[float]:
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(copy.deepcopy(results))
        ev = COCOeval(gt, dt, iouType=iou_type)
        ev.params.imgIds = ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(v) for v in ev.stats[:3]]


def evaluate_predictions(
    annotations_path: Path,
    predictions: list[dict[str, Any]],
    image_ids: Iterable[int] | None = None,
) -> dict[str, float]:
    """COCO AP, AP50 and AP75 (COCOeval ``stats[0:3]``) for masks and boxes.

    Args:
        annotations_path: COCO ground-truth file.
        predictions: COCO result dicts with ``image_id``, ``category_id``, ``score``,
            ``segmentation`` (compressed RLE) and ``bbox`` ([x, y, w, h]).
        image_ids: the images that were predicted on (default: all in the file). Give
            it when only a subset was run, or the others count as missed objects.

    Returns ``METRIC_KEYS`` → value. No predictions gives all zeros. COCOeval's -1
    (no ground truth at all in the evaluated images) is passed through unchanged.
    """
    gt = _quiet_coco(Path(annotations_path))
    known = set(gt.getImgIds())
    ids = sorted(known if image_ids is None else set(image_ids))
    unknown = ({p["image_id"] for p in predictions} | set(ids)) - known
    if unknown:
        raise ValueError(f"image ids not in {annotations_path}: {sorted(unknown)[:10]}")
    wanted = set(ids)
    predictions = [p for p in predictions if p["image_id"] in wanted]
    if not predictions:
        return dict.fromkeys(METRIC_KEYS, 0.0)
    stats = _run(gt, _segm_results(predictions), "segm", ids)
    stats += _run(gt, _bbox_results(predictions), "bbox", ids)
    return dict(zip(METRIC_KEYS, stats, strict=True))


def to_coco_results(image_id: int, detections_json: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The server's per-detection JSON for one image as COCO result dicts.

    Input entries: ``{"class_id", "label", "score", "box": [x1, y1, x2, y2],
    "mask": {"size": [H, W], "counts": str}}``; category_id = class_id + 1 and
    bbox = [x1, y1, x2 - x1, y2 - y1].
    """
    results = []
    for det in detections_json:
        x1, y1, x2, y2 = (float(v) for v in det["box"])
        counts = det["mask"]["counts"]
        if isinstance(counts, bytes):
            counts = counts.decode("ascii")
        results.append(
            {
                "image_id": int(image_id),
                "category_id": int(det["class_id"]) + 1,
                "score": float(det["score"]),
                "segmentation": {"size": [int(v) for v in det["mask"]["size"]], "counts": counts},
                "bbox": [x1, y1, x2 - x1, y2 - y1],
            }
        )
    return results


def read_rgb(path: Path) -> np.ndarray:
    """An image file as RGB uint8 [H, W, 3]."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def evaluate_model(
    predict: Predictor,
    dataset_dir: Path,
    limit: int | None = None,
    on_image: Callable[[], None] | None = None,
) -> dict[str, float]:
    """Runs ``predict`` on a COCO data set folder and returns ``evaluate_predictions``.

    ``dataset_dir`` holds ``annotations.json`` and ``images/<file_name>`` (the layout
    ``write_coco_dataset`` writes). Images go in ascending id order; ``limit`` keeps the
    first ``limit`` of them and AP is computed over those images only. ``on_image`` is
    called after each image (a progress line).
    """
    dataset_dir = Path(dataset_dir)
    annotations_path = dataset_dir / "annotations.json"
    images = sorted(json.loads(annotations_path.read_text())["images"], key=lambda im: im["id"])
    if limit is not None:
        images = images[:limit]
    results: list[dict[str, Any]] = []
    for info in images:
        rgb = read_rgb(dataset_dir / "images" / info["file_name"])
        results.extend(to_coco_results(info["id"], predict(rgb)))
        if on_image is not None:
            on_image()
    return evaluate_predictions(annotations_path, results, image_ids=[im["id"] for im in images])
