"""Decoding output0: confidence threshold, class-aware NMS, layouts, boxes back to pixels."""

from __future__ import annotations

import pytest
import torch

from maskserve.models.yoloseg.decode import (
    boxes_to_original,
    decode_dense,
    decode_end2end,
    detect_layout,
)
from maskserve.models.yoloseg.preprocess import letterbox_geometry

NM = 4  # mask coefficients in these small examples


def dense(rows: list[tuple[tuple[float, float, float, float], int, float]], nc: int = 2):
    """[1, 4 + nc + NM, A] with one anchor per (cxcywh, class, score); coeff 0 = anchor id."""
    out = torch.zeros(1, 4 + nc + NM, len(rows))
    for a, (cxcywh, cls, score) in enumerate(rows):
        out[0, :4, a] = torch.tensor(cxcywh)
        out[0, 4 + cls, a] = score
        out[0, 4 + nc, a] = a
    return out


def test_nms_removes_a_duplicate_but_keeps_other_classes() -> None:
    out = dense(
        [
            ((100, 100, 50, 50), 0, 0.9),
            ((102, 101, 50, 50), 0, 0.8),  # duplicate of anchor 0 (IoU ≈ 0.9)
            ((100, 100, 50, 50), 1, 0.7),  # same box, other class: kept
            ((300, 300, 40, 40), 0, 0.6),
        ]
    )
    (found,) = decode_dense(out, NM, conf=0.25, iou=0.7, max_det=300)
    assert found.coeffs[:, 0].tolist() == [0, 2, 3]
    assert found.class_ids.tolist() == [0, 1, 0]
    assert found.boxes[0].tolist() == [75, 75, 125, 125]


def test_conf_threshold_drops_low_scores_strictly() -> None:
    out = dense(
        [((50, 50, 10, 10), 0, 0.9), ((150, 50, 10, 10), 1, 0.2), ((250, 50, 10, 10), 0, 0.25)]
    )
    (found,) = decode_dense(out, NM, conf=0.25, iou=0.7, max_det=300)
    assert found.coeffs[:, 0].tolist() == [0]


def test_max_det_keeps_the_best() -> None:
    rows = [((50 + 30 * i, 50, 10, 10), 0, 0.3 + 0.05 * i) for i in range(6)]
    (found,) = decode_dense(dense(rows), NM, conf=0.25, iou=0.7, max_det=2)
    assert found.coeffs[:, 0].tolist() == [5, 4]


def test_end2end_rows_are_filtered_and_sorted() -> None:
    out = torch.zeros(1, 5, 6 + NM)
    out[0, 0, :6] = torch.tensor([1, 2, 3, 4, 0.5, 2])
    out[0, 1, :6] = torch.tensor([5, 6, 7, 8, 0.9, 1])
    out[0, 2, :6] = torch.tensor([5, 6, 7, 8, 0.1, 0])
    (found,) = decode_end2end(out, conf=0.25, max_det=300)
    assert found.scores.tolist() == pytest.approx([0.9, 0.5])
    assert found.class_ids.tolist() == [1, 2]
    assert found.boxes.tolist() == [[5, 6, 7, 8], [1, 2, 3, 4]]


def test_layout_detection() -> None:
    assert detect_layout([1, 116, 8400], 32, 80, end2end=False) == "dense"
    assert detect_layout(["batch", 116, "anchors"], 32, None, end2end=False) == "dense"
    assert detect_layout([1, 300, 38], 32, 80, end2end=True) == "end2end"
    assert detect_layout([1, 300, 38], 32, 80, end2end=False) == "end2end"
    with pytest.raises(ValueError, match="3 class names"):
        detect_layout([1, 116, 8400], 32, 3, end2end=False)


def test_boxes_back_to_original_pixels_subtract_pad_divide_and_clip() -> None:
    box = letterbox_geometry((480, 640), (320, 320))  # gain 0.5, pad_top 40
    boxes = torch.tensor([[10.0, 50.0, 100.0, 140.0], [-5.0, 30.0, 330.0, 300.0]])
    assert boxes_to_original(boxes, box).tolist() == [[20, 20, 200, 200], [0, 0, 640, 480]]
