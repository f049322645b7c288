"""torchvision's Mask R-CNN ROI heads at inference: the same answers, faster on a CPU.

Once the backbone is fast (bf16, channels-last), two steps of ``RoIHeads.forward``
dominate an 800-px R50-FPN image with 1000 proposals on a CPU (2 cores: box pooling
510 ms, the detection step 205 ms, the backbone 720 ms; ``benchmarks/bench_roi_stage.py``):

* **Box pooling.** torchvision's CPU ``roi_align`` runs on one thread, and converts a
  channels-last feature map to NCHW on every call. Here each level is made contiguous
  once and its RoIs are split over the worker's intra-op threads; RoIs are pooled
  independently, so the result is the same tensor.
* **The detection step.** ``postprocess_detections`` runs non-maximum suppression on
  every (proposal, class) pair above the score threshold (with a low threshold, 90,000
  boxes in 90 per-class runs) and then keeps the best ``detections_per_img``. Greedy NMS
  keeps a box exactly when no kept box of its class with a higher score overlaps it more
  than the threshold, so walking the candidates in descending score order and stopping
  once ``detections_per_img`` are kept gives the same boxes, having looked at only the
  first few dozen. torchvision switches to per-class runs on the boxes as they are above
  4,000 coordinates; below that it offsets boxes by class (which rounds differently), so
  small sets go to ``batched_nms`` itself. Boxes whose scores tie exactly may come out
  in another order, as they may between torchvision's own sorts.

The model is not modified: :func:`run_roi_heads` calls its modules (the exporter and the
parity tests see torchvision's code paths).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
from torchvision.models.detection.roi_heads import RoIHeads, maskrcnn_inference
from torchvision.ops import boxes as box_ops
from torchvision.ops import roi_align
from torchvision.ops.poolers import (
    MultiScaleRoIAlign,
    _convert_to_roi_format,
    _filter_input,
    _setup_scales,
)

Tensor = torch.Tensor
VANILLA_NMS_ABOVE = 4000  # torchvision's batched_nms: per-class runs above this on a CPU
BLOCK = 64  # candidates examined together in the early-exit NMS


def run_roi_heads(
    heads: RoIHeads,
    features: dict[str, Tensor],
    proposals: list[Tensor],
    sizes: list[tuple[int, int]],
    pool: ThreadPoolExecutor | None,
) -> list[dict[str, Tensor]]:
    """``heads(features, proposals, sizes)[0]`` in eval mode, for a model with masks, on
    a CPU (the early exit reads the candidates on the host)."""
    features = {name: level.contiguous() for name, level in features.items()}  # once
    pooled = pool_rois(heads.box_roi_pool, features, proposals, sizes, pool)
    logits, regression = heads.box_predictor(heads.box_head(pooled))
    boxes, scores, labels = detection_step(heads, logits, regression, proposals, sizes)
    masks = heads.mask_head(pool_rois(heads.mask_roi_pool, features, boxes, sizes, pool))
    probabilities = maskrcnn_inference(heads.mask_predictor(masks), labels)
    return [
        {"boxes": b, "labels": c, "scores": s, "masks": m}
        for b, c, s, m in zip(boxes, labels, scores, probabilities, strict=True)
    ]


def pool_rois(
    pooler: MultiScaleRoIAlign,
    features: dict[str, Tensor],
    boxes: list[Tensor],
    sizes: list[tuple[int, int]],
    pool: ThreadPoolExecutor | None,
) -> Tensor:
    """``pooler(features, boxes, sizes)``, each level's RoIs split over ``pool``."""
    levels = [level.contiguous() for level in _filter_input(features, pooler.featmap_names)]
    if pooler.scales is None or pooler.map_levels is None:
        pooler.scales, pooler.map_levels = _setup_scales(
            levels, sizes, pooler.canonical_scale, pooler.canonical_level
        )
    rois = _convert_to_roi_format(boxes)
    first = levels[0]
    result = first.new_zeros((len(rois), first.shape[1], *pooler.output_size))
    assigned = pooler.map_levels(boxes) if len(levels) > 1 else None
    for number, (level, scale) in enumerate(zip(levels, pooler.scales, strict=True)):
        chosen = torch.where(assigned == number)[0] if assigned is not None else None
        here = rois if chosen is None else rois[chosen]
        align = _aligner(level, pooler.output_size, scale, pooler.sampling_ratio)
        pooled = _split(align, here, pool)
        if chosen is None:
            result = pooled
        else:
            result[chosen] = pooled.to(result.dtype)
    return result


def _aligner(
    level: Tensor, size: tuple[int, int], scale: float, sampling: int
) -> Callable[[Tensor], Tensor]:
    def align(rois: Tensor) -> Tensor:
        return roi_align(
            level, rois, output_size=size, spatial_scale=scale, sampling_ratio=sampling
        )

    return align


def _split(
    align: Callable[[Tensor], Tensor], rois: Tensor, pool: ThreadPoolExecutor | None
) -> Tensor:
    parts = min(torch.get_num_threads(), len(rois) // 16)
    if pool is None or parts <= 1:
        return align(rois)
    return torch.cat(list(pool.map(align, rois.tensor_split(parts))))


def detection_step(
    heads: RoIHeads,
    logits: Tensor,
    regression: Tensor,
    proposals: list[Tensor],
    sizes: list[tuple[int, int]],
) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
    """``heads.postprocess_detections`` with the early-exit NMS described above."""
    classes = logits.shape[-1]
    counts = [len(p) for p in proposals]
    decoded = heads.box_coder.decode(regression, proposals).split(counts)
    probabilities = torch.softmax(logits, -1).split(counts)
    found: tuple[list[Tensor], list[Tensor], list[Tensor]] = ([], [], [])
    for boxes, scores, size in zip(decoded, probabilities, sizes, strict=True):
        boxes = box_ops.clip_boxes_to_image(boxes, size)[:, 1:].reshape(-1, 4)
        labels = torch.arange(1, classes, device=logits.device).repeat(len(scores))
        scores = scores[:, 1:].reshape(-1)
        above = torch.where(scores > heads.score_thresh)[0]
        boxes, scores, labels = boxes[above], scores[above], labels[above]
        sized = box_ops.remove_small_boxes(boxes, min_size=1e-2)
        boxes, scores, labels = boxes[sized], scores[sized], labels[sized]
        if boxes.numel() > VANILLA_NMS_ABOVE:
            keep = greedy_nms_top(boxes, scores, labels, heads.nms_thresh, heads.detections_per_img)
        else:
            keep = box_ops.batched_nms(boxes, scores, labels, heads.nms_thresh)
            keep = keep[: heads.detections_per_img]
        for out, values in zip(found, (boxes, scores, labels), strict=True):
            out.append(values[keep])
    return found


def greedy_nms_top(
    boxes: Tensor, scores: Tensor, labels: Tensor, threshold: float, limit: int
) -> Tensor:
    """Indices of the ``limit`` best boxes that per-class greedy NMS keeps, best first."""
    order = torch.argsort(scores, descending=True)
    kept: list[int] = []
    kept_boxes = boxes.new_zeros((0, 4))
    kept_labels = labels.new_zeros((0,))
    for start in range(0, len(order), BLOCK):
        block = order[start : start + BLOCK]
        candidates, classes = boxes[block], labels[block]
        against_kept = _overlaps(candidates, kept_boxes, threshold) & (
            classes[:, None] == kept_labels[None, :]
        )
        among = _overlaps(candidates, candidates, threshold) & (
            classes[:, None] == classes[None, :]
        )
        blocked = against_kept.any(1).numpy().copy()
        among_np = among.numpy()
        chosen = []
        for i in range(len(block)):
            if blocked[i]:
                continue
            chosen.append(i)
            blocked[i + 1 :] |= among_np[i, i + 1 :]  # what it suppresses further down
            if len(kept) + len(chosen) == limit:
                break
        if chosen:
            picked = torch.tensor(chosen, dtype=torch.long)
            kept.extend(block[picked].tolist())
            kept_boxes = torch.cat([kept_boxes, candidates[picked]])
            kept_labels = torch.cat([kept_labels, classes[picked]])
        if len(kept) == limit:
            break
    return torch.tensor(kept, dtype=torch.long, device=boxes.device)


def _overlaps(a: Tensor, b: Tensor, threshold: float) -> Tensor:
    """IoU(a_i, b_j) > threshold, computed as torchvision's CPU NMS kernel does (float
    arithmetic in its order, the comparison against the threshold in double)."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    width = (
        torch.minimum(a[:, None, 2], b[None, :, 2]) - torch.maximum(a[:, None, 0], b[None, :, 0])
    ).clamp(min=0)
    height = (
        torch.minimum(a[:, None, 3], b[None, :, 3]) - torch.maximum(a[:, None, 1], b[None, :, 1])
    ).clamp(min=0)
    inter = width * height
    iou = inter / (area_a[:, None] + area_b[None, :] - inter)
    return iou.double() > threshold
