"""Box decoding and Fast NMS, as the reference's ``Detect`` runs them in eval mode."""

from __future__ import annotations

from dataclasses import dataclass

import torch

VARIANCES = (0.1, 0.2)


@dataclass
class ImageDetections:
    """Detect's output for one image: relative point-form boxes, coefficients, classes."""

    boxes: torch.Tensor  # [N, 4] relative (x1, y1, x2, y2), not clipped
    coeffs: torch.Tensor  # [N, k]
    class_ids: torch.Tensor  # [N] 0-based, background removed
    scores: torch.Tensor  # [N]


def decode_boxes(loc: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """Centre-size offsets [..., P, 4] against priors [P, 4] → point-form boxes."""
    centre = priors[:, :2] + loc[..., :2] * VARIANCES[0] * priors[:, 2:]
    size = priors[:, 2:] * torch.exp(loc[..., 2:] * VARIANCES[1])
    top_left = centre - size / 2
    return torch.cat((top_left, top_left + size), dim=-1)


def box_iou_batched(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU [C, n, m] of point-form boxes [C, n, 4] and [C, m, 4], no +1 term."""
    top_left = torch.maximum(a[:, :, None, :2], b[:, None, :, :2])
    bottom_right = torch.minimum(a[:, :, None, 2:], b[:, None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    area_a = ((a[:, :, 2] - a[:, :, 0]) * (a[:, :, 3] - a[:, :, 1]))[:, :, None]
    area_b = ((b[:, :, 2] - b[:, :, 0]) * (b[:, :, 3] - b[:, :, 1]))[:, None, :]
    return inter / (area_a + area_b - inter)


def fast_nms(
    boxes: torch.Tensor,
    coeffs: torch.Tensor,
    scores: torch.Tensor,
    iou_threshold: float,
    top_k: int,
    max_detections: int,
) -> ImageDetections:
    """Per-class Fast NMS over all classes at once, then a cross-class top-k.

    ``scores`` is [C, K] for K candidate priors. Suppressed boxes still suppress (the
    "fast" approximation), and there is no score threshold after NMS.
    """
    # the reference sorts all K scores and keeps top_k; topk returns the same, sorted, in
    # O(K log top_k) instead of O(K log K): 10x less on 19k candidates of a 550-px model
    scores, order = scores.topk(min(top_k, scores.shape[1]), dim=1, sorted=True)
    num_classes, k = order.shape
    class_boxes = boxes[order.reshape(-1)].reshape(num_classes, k, 4)
    class_coeffs = coeffs[order.reshape(-1)].reshape(num_classes, k, -1)
    iou = box_iou_batched(class_boxes, class_boxes).triu(diagonal=1)
    keep = iou.max(dim=1).values <= iou_threshold
    class_ids = torch.arange(num_classes, device=boxes.device)[:, None].expand_as(keep)
    kept_scores = scores[keep]
    kept_scores, best = kept_scores.sort(descending=True)
    best = best[:max_detections]
    return ImageDetections(
        boxes=class_boxes[keep][best],
        coeffs=class_coeffs[keep][best],
        class_ids=class_ids[keep][best],
        scores=kept_scores[:max_detections],
    )


def detect_image(
    loc: torch.Tensor,
    conf: torch.Tensor,
    coeffs: torch.Tensor,
    priors: torch.Tensor,
    conf_thresh: float,
    nms_thresh: float,
    top_k: int,
    max_detections: int,
) -> ImageDetections:
    """One image: loc [P,4], softmaxed conf [P,C+1], coeffs [P,k] → kept detections."""
    boxes = decode_boxes(loc, priors)
    class_scores = conf[:, 1:]
    candidates = class_scores.max(dim=1).values > conf_thresh
    if bool(candidates.all()):  # e.g. conf_thresh 0: no copy of every prior's scores
        return fast_nms(boxes, coeffs, class_scores.t(), nms_thresh, top_k, max_detections)
    if not bool(candidates.any()):
        empty = boxes.new_zeros((0, 4))
        return ImageDetections(
            boxes=empty,
            coeffs=coeffs.new_zeros((0, coeffs.shape[-1])),
            class_ids=torch.zeros(0, dtype=torch.int64, device=loc.device),
            scores=conf.new_zeros(0),
        )
    return fast_nms(
        boxes[candidates],
        coeffs[candidates],
        class_scores[candidates].t(),  # rows first: a gather of contiguous rows
        nms_thresh,
        top_k,
        max_detections,
    )
