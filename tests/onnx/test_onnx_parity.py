"""YolactOnnxBackend vs YolactBackend on the shipped weights: same detections and masks."""

from __future__ import annotations

import pytest
import torch
from onnx_helpers import example_image, sample_images

from maskserve.models.base import Backend
from maskserve.models.types import Detections
from maskserve.models.yolact.assemble import upsample_masks
from maskserve.models.yolact.export import ExportResult
from maskserve.models.yolact.onnx_backend import YolactOnnxBackend

SCORE_TOLERANCE = 1e-4
BOX_TOLERANCE_PX = 0.5
MIN_MASK_IOU = 0.99
MIN_SCORE = 0.05  # everything Detect keeps (conf_thresh), not just confident detections


@pytest.fixture(scope="module")
def pair(shipped_backend: Backend, shipped_export: ExportResult):
    images = [example_image(), *sample_images(7, [(240, 320), (300, 200), (320, 320)])]
    onnx_backend = YolactOnnxBackend(shipped_export.path, "yolact_shapes_onnx", "cpu")
    want = shipped_backend.infer(images, max_detections=100)
    got = onnx_backend.infer(images, max_detections=100)
    return want, got


def match(want: Detections, got: Detections) -> list[int]:
    """For each wanted detection, the index of the same detection in ``got``.

    The same index when class and box agree; else (a near-tie swapped the order) the
    same-class detection with the closest box.
    """
    order = []
    for i in range(len(want)):
        if i < len(got) and _same(want, i, got, i):
            order.append(i)
            continue
        close = (got.boxes - want.boxes[i]).abs().amax(dim=1)
        close[got.class_ids != want.class_ids[i]] = float("inf")
        order.append(int(close.argmin()))
    return order


def _same(a: Detections, i: int, b: Detections, j: int) -> bool:
    same_class = bool(a.class_ids[i] == b.class_ids[j])
    return same_class and float((a.boxes[i] - b.boxes[j]).abs().max()) <= BOX_TOLERANCE_PX


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def test_detections_are_the_same(pair) -> None:
    want, got = pair
    assert sum(len(w) for w in want) >= 20
    for w, g in zip(want, got, strict=True):
        assert len(w) == len(g)
        order = match(w, g)
        assert sorted(order) == list(range(len(g))), "detections do not pair up one to one"
        swapped = sum(i != j for i, j in enumerate(order))
        assert swapped <= 2, f"{swapped} detections changed places"
        for i, j in enumerate(order):
            assert _same(w, i, g, j), (i, j)
            assert abs(float(w.scores[i] - g.scores[j])) <= SCORE_TOLERANCE
        assert w.image_size == g.image_size
        assert w.class_names == g.class_names


def test_masks_are_the_same(pair) -> None:
    want, got = pair
    for w, g in zip(want, got, strict=True):
        order = match(w, g)
        keep = w.scores > MIN_SCORE
        full_w = upsample_masks(w.lowres_masks[keep], w.image_size, w.mask_threshold)
        picked = torch.tensor(order, dtype=torch.long)[keep]
        full_g = upsample_masks(g.lowres_masks[picked], g.image_size, g.mask_threshold)
        assert torch.equal(w.proto_windows[keep], g.proto_windows[picked])
        for a, b in zip(full_w, full_g, strict=True):
            assert mask_iou(a, b) >= MIN_MASK_IOU


def test_onnx_backend_info(shipped_export: ExportResult) -> None:
    backend = YolactOnnxBackend(shipped_export.path, "shapes", "cpu", score_threshold=0.3)
    info = backend.info
    assert info.family == "yolact"
    assert info.extra["backend"] == "onnxruntime"
    assert info.extra["provider"] == "CPUExecutionProvider"
    assert (info.input_size, info.dtype, info.score_threshold) == (320, "float32", 0.3)
    assert backend.infer([], max_detections=10) == []
