"""``output0`` → kept detections per image, and boxes back to original pixels.

Two layouts (``shared/reference/yoloseg.md`` §3 and §5):

* **dense** ``[B, 4 + nc + nm, A]`` (the classic one-to-many head): channels are
  ``cx, cy, w, h`` in input pixels, ``nc`` class scores already through a sigmoid (no
  objectness: confidence = the best class score), then ``nm`` raw mask coefficients.
  Decoded like Ultralytics' ``non_max_suppression``: best score > conf, one label per
  box (the argmax), at most ``MAX_NMS`` candidates by score, xywh → xyxy, class-aware
  NMS (``torchvision.ops.nms`` on boxes offset by ``class × 7680``, as Ultralytics
  does), ``max_det``.
* **end2end** ``[B, N, 6 + nm]`` rows ``x1, y1, x2, y2, score, class, coeffs`` (YOLO26
  end-to-end heads and ``nms=True`` exports, zero-padded): no NMS, only score > conf,
  sorted, ``max_det``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torchvision.ops import nms

from maskserve.models.yoloseg.preprocess import Letterbox

Layout = Literal["dense", "end2end"]
MAX_NMS = 30000  # Ultralytics' pre-NMS cap
MAX_WH = 7680  # Ultralytics' per-class box offset for class-aware NMS


@dataclass
class Candidates:
    """One image's kept detections in input (letterboxed) pixels, by descending score."""

    boxes: torch.Tensor  # [n, 4] float32 xyxy
    scores: torch.Tensor  # [n] float32
    class_ids: torch.Tensor  # [n] int64
    coeffs: torch.Tensor  # [n, nm] float32


def detect_layout(
    output0_shape: Sequence, num_masks: int, num_classes: int | None, end2end: bool
) -> Layout:
    """Which decoder fits an ``output0`` of this (possibly symbolic) shape.

    The metadata's ``end2end`` decides when the shape allows it; otherwise the shape does:
    rows of ``6 + nm`` numbers whose dim 1 is not ``4 + nc + nm`` are end-to-end output.
    """
    if len(output0_shape) != 3:
        raise ValueError(f"output0 must be rank 3, got shape {list(output0_shape)}")
    channels, last = output0_shape[1], output0_shape[2]
    fits_e2e = last == 6 + num_masks
    fits_dense = isinstance(channels, int) and channels > 4 + num_masks
    if num_classes and fits_dense:
        fits_dense = channels == 4 + num_classes + num_masks
    if end2end and fits_e2e:
        return "end2end"
    if fits_dense:
        return "dense"
    if fits_e2e:
        return "end2end"
    if num_classes and isinstance(channels, int) and channels > 4 + num_masks:
        raise ValueError(
            f"output0 shape {list(output0_shape)} has {channels - 4 - num_masks} classes, "
            f"but {num_classes} class names are given; set class_names (one per class) "
            "in the model.toml [yoloseg] table"
        )
    raise ValueError(
        f"output0 shape {list(output0_shape)} matches neither [B, 4+nc+{num_masks}, A] "
        f"nor [B, N, {6 + num_masks}]"
    )


def xywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """Centre-size boxes → corner boxes."""
    centre, half = boxes[..., :2], boxes[..., 2:4] / 2
    return torch.cat((centre - half, centre + half), dim=-1)


def decode_dense(
    output0: torch.Tensor, num_masks: int, conf: float, iou: float, max_det: int
) -> list[Candidates]:
    """Dense head output ``[B, 4 + nc + nm, A]`` → NMS-ed candidates per image."""
    pred = output0.float().transpose(1, 2)  # [B, A, C]
    num_classes = pred.shape[2] - 4 - num_masks
    if num_classes < 1:
        raise ValueError(f"output0 has {pred.shape[2]} channels: no room for class scores")
    best, labels = pred[..., 4 : 4 + num_classes].max(dim=2)
    found = []
    for b in range(pred.shape[0]):
        index = torch.nonzero(best[b] > conf).flatten()
        if index.numel() > MAX_NMS:
            index = index[best[b, index].topk(MAX_NMS).indices]
        rows = pred[b, index]
        boxes = xywh_to_xyxy(rows[:, :4])
        # Ultralytics' own class offset (not batched_nms'): the offset boxes' float32
        # rounding decides IoUs right at the threshold, so use the same numbers.
        offset = labels[b, index, None].float() * MAX_WH
        keep = nms(boxes + offset, best[b, index], iou)[:max_det]
        found.append(
            Candidates(
                boxes=boxes[keep],
                scores=best[b, index[keep]],
                class_ids=labels[b, index[keep]].long(),
                coeffs=rows[keep, 4 + num_classes :],
            )
        )
    return found


def decode_end2end(output0: torch.Tensor, conf: float, max_det: int) -> list[Candidates]:
    """End-to-end rows ``[B, N, 6 + nm]`` → score-filtered, sorted candidates per image."""
    pred = output0.float()
    found = []
    for b in range(pred.shape[0]):
        rows = pred[b, pred[b, :, 4] > conf]
        rows = rows[torch.argsort(rows[:, 4], descending=True, stable=True)][:max_det]
        found.append(
            Candidates(
                boxes=rows[:, :4],
                scores=rows[:, 4],
                class_ids=rows[:, 5].round().long(),
                coeffs=rows[:, 6:],
            )
        )
    return found


def decode(
    output0: torch.Tensor,
    layout: Layout,
    num_masks: int,
    conf: float,
    iou: float,
    max_det: int,
) -> list[Candidates]:
    """Dispatch on ``layout`` (see :func:`detect_layout`)."""
    if layout == "end2end":
        return decode_end2end(output0, conf, max_det)
    return decode_dense(output0, num_masks, conf, iou, max_det)


def boxes_to_original(boxes: torch.Tensor, box: Letterbox) -> torch.Tensor:
    """Input-pixel xyxy boxes → original-image pixels: remove the pad, undo the resize, clip.

    Divides by the resize's exact per-axis scale (``content / original``) rather than
    Ultralytics' ``gain``: the protos are mapped with the same numbers (see
    ``assemble.py``), so boxes and masks agree; the two differ by < 0.5 / gain pixels.
    """
    scale = boxes.new_tensor([box.scale_x, box.scale_y, box.scale_x, box.scale_y])
    pad = boxes.new_tensor([box.pad_left, box.pad_top, box.pad_left, box.pad_top])
    out = (boxes - pad) / scale
    limit = boxes.new_tensor([box.image_w, box.image_h, box.image_w, box.image_h])
    return torch.minimum(out.clamp(min=0), limit)
