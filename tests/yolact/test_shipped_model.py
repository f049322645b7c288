"""The shipped model, through the real loader, finds the shapes drawn in new images."""

import copy
import json
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch

from maskserve.cli import main
from maskserve.models.base import Backend
from maskserve.models.registry import ZOO_DIR
from maskserve.models.synthetic import SHAPE_CLASSES
from maskserve.models.yolact.assemble import upsample_masks

EXAMPLE = ZOO_DIR / "yolact_shapes" / "example.png"
# Issue 3's bar for this test: mask AP50 >= 0.80 on these 50 held-out images (the shipped
# model measures 0.804 here; 0.819 on the 500-image set, docs/eval_yolact_shapes.json).
MASK_AP50_FLOOR = 0.80
FOUND_FRACTION_FLOOR = 0.75  # measured 35 of 42


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def test_the_drawn_shapes_are_found(shipped_backend: Backend) -> None:
    from maskserve.evaluate import predictor
    from maskserve.models.evaluation import shapes_found

    found, total = shapes_found(predictor(shipped_backend), seed=424242, images=12)
    assert total >= 20
    assert found / total >= FOUND_FRACTION_FLOOR, f"found {found} of {total} shapes"


def test_predict_writes_json_and_overlay_that_decode_to_the_model_masks(
    tmp_path: Path, shipped_backend: Backend
) -> None:
    assert main(["predict", str(EXAMPLE), "--out", str(tmp_path), "--score-threshold", "0.3"]) == 0
    payload = json.loads((tmp_path / "example.json").read_text())
    assert (tmp_path / "example.png").stat().st_size > 0
    assert payload["model"] == "yolact_shapes"
    assert payload["image"] == {"width": 480, "height": 360}
    detections = payload["detections"]
    assert len(detections) >= 3
    scores = [d["score"] for d in detections]
    assert scores == sorted(scores, reverse=True) and min(scores) > 0.3
    assert {d["label"] for d in detections} <= set(SHAPE_CLASSES)

    from PIL import Image

    image = np.asarray(Image.open(EXAMPLE).convert("RGB"))
    dets = shipped_backend.infer([image], max_detections=100)[0]
    keep = dets.scores > 0.3
    reference = upsample_masks(dets.lowres_masks[keep], dets.image_size).numpy()
    assert len(reference) == len(detections)
    for det, expected in zip(detections, reference, strict=True):
        decoded = mask_utils.decode({"size": det["mask"]["size"], "counts": det["mask"]["counts"]})
        assert decoded.shape == (360, 480)
        assert mask_iou(decoded.astype(bool), expected) >= 0.999


@pytest.mark.slow
def test_held_out_mask_ap50(tmp_path: Path, shipped_backend: Backend) -> None:
    from maskserve.evaluate import held_out_dataset, predictor
    from maskserve.models.evaluation import evaluate_model

    dataset = held_out_dataset(tmp_path / "heldout", 50, 777, "384x288")
    metrics = evaluate_model(predictor(shipped_backend), dataset)
    assert metrics["mask_AP50"] >= MASK_AP50_FLOOR, metrics


def test_float16_finds_the_same_confident_detections(shipped_backend: Backend) -> None:
    from PIL import Image

    from maskserve.models.yolact.predictor import YolactPredictor

    image = np.asarray(Image.open(EXAMPLE).convert("RGB"))
    full = shipped_backend.infer([image], max_detections=100)[0]
    model = copy.deepcopy(shipped_backend.predictor.model)
    half = YolactPredictor(model, "cpu", torch.float16).predict([image])[0]
    confident = full.scores > 0.5
    assert int(confident.sum()) >= 3
    for cls, box in zip(full.class_ids[confident], full.boxes[confident], strict=True):
        same = (half.class_ids == cls) & ((half.boxes - box).abs().amax(dim=1) <= 3)
        assert bool(same.any()), f"class {int(cls)} box {box.tolist()} not found in float16"


def test_predict_defaults_to_the_models_own_score_threshold(tmp_path: Path) -> None:
    """Offline and served answers agree: no flag means the model.toml threshold."""
    import tomllib

    from maskserve.models.registry import find_model

    spec = find_model("maskrcnn_shapes")
    threshold = tomllib.loads((spec.folder / "model.toml").read_text())["score_threshold"]
    argv = ["predict", str(EXAMPLE), "--model", "maskrcnn_shapes", "--out", str(tmp_path)]
    assert main(argv) == 0
    scores = [d["score"] for d in json.loads((tmp_path / "example.json").read_text())["detections"]]
    assert scores and min(scores) > threshold
    assert main([*argv, "--score-threshold", "0.05", "--out", str(tmp_path / "low")]) == 0
    low = json.loads((tmp_path / "low" / "example.json").read_text())["detections"]
    assert len(low) >= len(scores)
