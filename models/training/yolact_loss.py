"""YOLACT's training loss: prior matching, box regression, OHEM classification, masks.

Follows Bolya et al. (multibox loss with 3:1 hard negatives, box-area-normalised mask
BCE on crops of the matched ground truth); used only to train our own small models.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from maskserve.models.yolact.assemble import crop_bounds
from maskserve.models.yolact.detect import VARIANCES
from maskserve.models.yolact.network import RawOutputs

POSITIVE_IOU = 0.5
NEGATIVE_IOU = 0.4
NEGATIVES_PER_POSITIVE = 3
MAX_MASKS_PER_IMAGE = 100
BOX_ALPHA = 1.5
MASK_ALPHA = 6.125


@dataclass
class Target:
    """Ground truth of one image: relative point-form boxes, 0-based labels, masks [G,h,w]."""

    boxes: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor


def point_form(priors: torch.Tensor) -> torch.Tensor:
    return torch.cat((priors[:, :2] - priors[:, 2:] / 2, priors[:, :2] + priors[:, 2:] / 2), 1)


def pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(-1)[:, None]
    area_b = (b[:, 2:] - b[:, :2]).prod(-1)[None, :]
    return inter / (area_a + area_b - inter)


def encode_boxes(matched: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    centre = ((matched[:, :2] + matched[:, 2:]) / 2 - priors[:, :2]) / (
        VARIANCES[0] * priors[:, 2:]
    )
    size = torch.log((matched[:, 2:] - matched[:, :2]) / priors[:, 2:]) / VARIANCES[1]
    return torch.cat((centre, size), 1)


def match(priors: torch.Tensor, target: Target) -> tuple[torch.Tensor, torch.Tensor]:
    """Per prior: class target (0 background, −1 ignore, k+1 class k) and matched gt index."""
    overlaps = pairwise_iou(target.boxes, point_form(priors))
    best_overlap, best_gt = overlaps.max(0)
    forced = overlaps.argmax(1)
    best_overlap[forced] = 2.0
    best_gt[forced] = torch.arange(len(forced), device=priors.device)
    labels = target.labels[best_gt] + 1
    labels[best_overlap < POSITIVE_IOU] = -1
    labels[best_overlap < NEGATIVE_IOU] = 0
    return labels, best_gt


def _conf_loss(conf: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on positives and the hardest 3× as many negatives."""
    positive = labels > 0
    background = torch.logsumexp(conf, dim=1) - conf[:, 0]
    ranked = background.detach().clone()
    ranked[labels != 0] = -1.0
    num_neg = min(NEGATIVES_PER_POSITIVE * int(positive.sum()), int((labels == 0).sum()))
    negative = torch.zeros_like(positive)
    negative[ranked.topk(num_neg).indices] = True
    chosen = positive | negative
    return F.cross_entropy(conf[chosen], labels[chosen].clamp(min=0), reduction="sum")


def _mask_loss(
    proto: torch.Tensor, coeffs: torch.Tensor, target: Target, gt_index: torch.Tensor
) -> torch.Tensor:
    """Box-area-normalised BCE of assembled masks, cropped by the matched gt box."""
    if len(gt_index) > MAX_MASKS_PER_IMAGE:
        pick = torch.randperm(len(gt_index), device=proto.device)[:MAX_MASKS_PER_IMAGE]
        coeffs, gt_index = coeffs[pick], gt_index[pick]
    height, width, _ = proto.shape
    pred = torch.sigmoid(proto @ coeffs.t()).permute(2, 0, 1)
    truth = target.masks[gt_index]
    boxes = target.boxes[gt_index]
    bounds = crop_bounds(boxes, height, width)
    cols = torch.arange(width, device=proto.device)
    rows = torch.arange(height, device=proto.device)
    keep = (
        (rows[None, :, None] >= bounds[:, 1, None, None])
        & (rows[None, :, None] < bounds[:, 3, None, None])
        & (cols[None, None, :] >= bounds[:, 0, None, None])
        & (cols[None, None, :] < bounds[:, 2, None, None])
    )
    bce = F.binary_cross_entropy(pred.clamp(0, 1), truth, reduction="none") * keep
    area = ((boxes[:, 2] - boxes[:, 0]) * width * (boxes[:, 3] - boxes[:, 1]) * height).clamp(min=1)
    return (bce.sum(dim=(1, 2)) / area).sum()


def yolact_loss(raw: RawOutputs, targets: list[Target]) -> dict[str, torch.Tensor]:
    """Box, class and mask losses, each normalised by the batch's number of positives."""
    totals = {
        "box": raw.loc.new_zeros(()),
        "conf": raw.loc.new_zeros(()),
        "mask": raw.loc.new_zeros(()),
    }
    num_pos = 0
    for i, target in enumerate(targets):
        if len(target.labels) == 0:
            continue
        labels, gt = match(raw.priors, target)
        positive = labels > 0
        num_pos += int(positive.sum())
        loc_target = encode_boxes(target.boxes[gt[positive]], raw.priors[positive])
        totals["box"] = totals["box"] + F.smooth_l1_loss(
            raw.loc[i][positive], loc_target, reduction="sum"
        )
        totals["conf"] = totals["conf"] + _conf_loss(raw.conf[i], labels)
        totals["mask"] = totals["mask"] + _mask_loss(
            raw.proto[i], raw.coeffs[i][positive], target, gt[positive]
        )
    scale = 1.0 / max(num_pos, 1)
    return {
        "box": totals["box"] * BOX_ALPHA * scale,
        "conf": totals["conf"] * scale,
        "mask": totals["mask"] * MASK_ALPHA * scale,
    }
