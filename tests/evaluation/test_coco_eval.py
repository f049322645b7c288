"""COCO evaluation helper: conversion, AP on perfect/poor/empty predictions, model loop."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from maskserve.models.evaluation import (
    METRIC_KEYS,
    evaluate_model,
    evaluate_predictions,
    to_coco_results,
)
from maskserve.models.synthetic import write_coco_dataset

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

NUM_IMAGES = 5


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("coco")
    write_coco_dataset(out, NUM_IMAGES, seed=3, height=96, width=112)
    return out


@pytest.fixture(scope="module")
def gt(dataset: Path) -> dict[str, Any]:
    return json.loads((dataset / "annotations.json").read_text())


def _as_results(anns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = ("image_id", "category_id", "segmentation", "bbox")
    return [{**{k: a[k] for k in keys}, "score": 1.0} for a in anns]


def _encode(mask: np.ndarray) -> dict[str, Any]:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}


def test_ground_truth_scores_one(dataset: Path, gt: dict[str, Any]) -> None:
    metrics = evaluate_predictions(dataset / "annotations.json", _as_results(gt["annotations"]))
    assert set(metrics) == set(METRIC_KEYS)
    for key, value in metrics.items():
        assert value == pytest.approx(1.0, abs=1e-6), key


def test_shifted_predictions_score_lower(dataset: Path, gt: dict[str, Any]) -> None:
    """Each prediction moved by ~12 % of its size: box IoU stays above 0.5 but below 0.75."""
    shifted = []
    for r in _as_results(gt["annotations"]):
        x, y, w, h = r["bbox"]
        d = max(1, round(0.12 * max(w, h)))
        mask = np.roll(mask_utils.decode(r["segmentation"]).astype(bool), (d, d), axis=(0, 1))
        shifted.append({**r, "segmentation": _encode(mask), "bbox": [x + d, y + d, w, h]})
    metrics = evaluate_predictions(dataset / "annotations.json", shifted)
    assert metrics["mask_AP"] < 0.6 and metrics["box_AP"] < 0.6
    assert metrics["box_AP50"] > 0.5
    assert metrics["mask_AP75"] < metrics["mask_AP50"] and metrics["box_AP75"] < metrics["box_AP50"]


def test_garbage_and_wrong_class_score_near_zero(dataset: Path, gt: dict[str, Any]) -> None:
    rng = np.random.default_rng(0)
    garbage = []
    for r in _as_results(gt["annotations"]):
        x, y = rng.integers(0, 80, size=2)
        mask = np.zeros((96, 112), dtype=bool)
        mask[y : y + 10, x : x + 10] = True
        garbage.append(
            {**r, "segmentation": _encode(mask), "bbox": [float(x), float(y), 10.0, 10.0]}
        )
    metrics = evaluate_predictions(dataset / "annotations.json", garbage)
    assert max(metrics.values()) < 0.1

    wrong = [{**r, "category_id": r["category_id"] % 8 + 1} for r in _as_results(gt["annotations"])]
    assert max(evaluate_predictions(dataset / "annotations.json", wrong).values()) == 0.0


def test_empty_predictions_give_zeros(dataset: Path) -> None:
    assert evaluate_predictions(dataset / "annotations.json", []) == dict.fromkeys(METRIC_KEYS, 0.0)


def test_unknown_image_id_rejected(dataset: Path, gt: dict[str, Any]) -> None:
    bad = [{**_as_results(gt["annotations"])[0], "image_id": 999}]
    with pytest.raises(ValueError, match="999"):
        evaluate_predictions(dataset / "annotations.json", bad)


def test_predictions_not_mutated(dataset: Path, gt: dict[str, Any]) -> None:
    preds = _as_results(gt["annotations"])
    before = json.dumps(preds, sort_keys=True)
    evaluate_predictions(dataset / "annotations.json", preds)
    assert json.dumps(preds, sort_keys=True) == before


def test_to_coco_results() -> None:
    det = {
        "class_id": 2,
        "label": "rectangle",
        "score": 0.75,
        "box": [10.0, 20.0, 30.0, 60.0],
        "mask": {"size": [96, 112], "counts": "abc"},
    }
    assert to_coco_results(4, [det]) == [
        {
            "image_id": 4,
            "category_id": 3,
            "score": 0.75,
            "segmentation": {"size": [96, 112], "counts": "abc"},
            "bbox": [10.0, 20.0, 20.0, 40.0],
        }
    ]
    assert to_coco_results(4, []) == []


def _oracle(dataset: Path, gt: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Server-style detections keyed by the hash of the RGB image they belong to.

    Images are read with Pillow, independently of the OpenCV reader under test.
    """
    by_hash: dict[str, list[dict[str, Any]]] = {}
    for info in gt["images"]:
        with Image.open(dataset / "images" / info["file_name"]) as im:
            rgb = np.asarray(im.convert("RGB"))
        dets = []
        for a in gt["annotations"]:
            if a["image_id"] != info["id"]:
                continue
            x, y, w, h = a["bbox"]
            dets.append(
                {
                    "class_id": a["category_id"] - 1,
                    "label": "?",
                    "score": 0.9,
                    "box": [x, y, x + w, y + h],
                    "mask": a["segmentation"],
                }
            )
        by_hash[hashlib.sha1(rgb.tobytes()).hexdigest()] = dets
    return by_hash


def test_evaluate_model_with_oracle(dataset: Path, gt: dict[str, Any]) -> None:
    by_hash = _oracle(dataset, gt)
    calls: list[int] = []

    def predict(rgb: np.ndarray) -> list[dict[str, Any]]:
        assert rgb.dtype == np.uint8 and rgb.shape == (96, 112, 3)
        calls.append(1)
        # an image read as BGR (or any other way than the writer wrote it) misses here
        return by_hash.get(hashlib.sha1(rgb.tobytes()).hexdigest(), [])

    metrics = evaluate_model(predict, dataset)
    assert len(calls) == NUM_IMAGES
    assert metrics["mask_AP"] == pytest.approx(1.0) and metrics["box_AP"] == pytest.approx(1.0)

    calls.clear()
    limited = evaluate_model(predict, dataset, limit=2)
    assert len(calls) == 2
    assert limited["mask_AP"] == pytest.approx(1.0), "images not run must not count as misses"


def test_evaluate_model_blind_predictor_scores_zero(dataset: Path) -> None:
    metrics = evaluate_model(lambda rgb: [], dataset, limit=1)
    assert metrics == dict.fromkeys(METRIC_KEYS, 0.0)
