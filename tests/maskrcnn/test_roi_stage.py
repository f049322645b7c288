"""roi_stage.py: the ROI heads' answers equal torchvision's, exactly.

The early-exit NMS against ``batched_nms`` on sets large enough for torchvision's per-class
runs (with clusters, so that suppression happens, and many limits and thresholds); the
threaded box pooling against the pooler's own forward; and the whole stage against
``RoIHeads.forward`` on a network that keeps every candidate (score threshold 0).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch
from maskrcnn_helpers import as_tensors
from torchvision.models.detection import MaskRCNN
from torchvision.ops import boxes as box_ops

from maskserve.models.maskrcnn.config import MaskRcnnConfig
from maskserve.models.maskrcnn.network import build_maskrcnn
from maskserve.models.maskrcnn.roi_stage import (
    VANILLA_NMS_ABOVE,
    greedy_nms_top,
    pool_rois,
    run_roi_heads,
)


def clustered_boxes(seed: int, count: int, classes: int) -> tuple[torch.Tensor, ...]:
    """Boxes around a few centres (heavy overlaps), random distinct scores and labels."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.rand((12, 2), generator=gen) * 400
    pick = torch.randint(0, 12, (count,), generator=gen)
    middle = centres[pick] + torch.randn((count, 2), generator=gen) * 8
    size = 20 + torch.rand((count, 2), generator=gen) * 60
    boxes = torch.cat([middle - size / 2, middle + size / 2], 1)
    # distinct scores: boxes tied on score may be ordered differently (roi_stage.py says so)
    scores = (torch.randperm(count, generator=gen).float() + 1) / (count + 1)
    labels = torch.randint(1, classes + 1, (count,), generator=gen)
    return boxes, scores, labels


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_early_exit_nms_keeps_what_batched_nms_keeps(seed: int, threshold: float) -> None:
    boxes, scores, labels = clustered_boxes(seed, 3000, classes=4 + 10 * seed)
    assert boxes.numel() > VANILLA_NMS_ABOVE  # torchvision's per-class runs
    expected = box_ops.batched_nms(boxes, scores, labels, threshold)
    for limit in (1, 7, 20, 100, 5000):
        got = greedy_nms_top(boxes, scores, labels, threshold, limit)
        assert torch.equal(got, expected[:limit]), (limit, got[:10], expected[:10])


@pytest.fixture(autouse=True)
def keep_thread_count() -> Iterator[None]:
    """The tests below set torch's thread count (the pooling's parts): restore it."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@dataclass
class Staged:
    """What the ROI heads take: features, proposals and sizes, from ``model``."""

    model: MaskRCNN
    features: dict[str, torch.Tensor]
    proposals: list[torch.Tensor]
    sizes: list[tuple[int, int]]


@pytest.fixture(scope="module")
@torch.inference_mode()
def staged(slim_config: MaskRcnnConfig, images: list[np.ndarray]) -> Staged:
    """The slim network keeping every (proposal, class) pair: the NMS sees thousands."""
    config = replace(slim_config, box_score_thresh=0.0, detections_per_img=50, min_size=256)
    torch.manual_seed(0)
    model = build_maskrcnn(config).eval()
    batch = model.transform(as_tensors(images))[0]
    features = model.backbone(batch.tensors)
    proposals, _ = model.rpn(batch, features)
    return Staged(model, features, proposals, batch.image_sizes)


@torch.inference_mode()
def test_the_stage_equals_torchvision_roi_heads(staged: Staged, images: list[np.ndarray]) -> None:
    model, features, proposals, sizes = (
        staged.model,
        staged.features,
        staged.proposals,
        staged.sizes,
    )
    expected, _ = model.roi_heads(features, proposals, sizes)
    classes = model.roi_heads.box_predictor.cls_score.out_features - 1
    assert min(len(p) for p in proposals) * classes * 4 > VANILLA_NMS_ABOVE  # the early exit
    with ThreadPoolExecutor(3) as pool:
        for threads in (1, 3):
            torch.set_num_threads(threads)  # how many parts the pooling is split into
            got = run_roi_heads(model.roi_heads, features, proposals, sizes, pool)
            assert len(got) == len(expected) == len(images)
            for mine, theirs in zip(got, expected, strict=True):
                assert len(theirs["boxes"]) == 50
                for key in ("boxes", "labels", "scores", "masks"):
                    assert torch.equal(mine[key], theirs[key]), key


@torch.inference_mode()
def test_threaded_box_pooling_equals_the_pooler(staged: Staged) -> None:
    features, proposals, sizes = staged.features, staged.proposals, staged.sizes
    pooler = staged.model.roi_heads.box_roi_pool
    channels_last = {
        k: v.contiguous(memory_format=torch.channels_last) for k, v in features.items()
    }
    expected = pooler(features, proposals, sizes)
    torch.set_num_threads(4)
    with ThreadPoolExecutor(4) as pool:
        assert torch.equal(pool_rois(pooler, channels_last, proposals, sizes, pool), expected)
        assert torch.equal(pool_rois(pooler, features, proposals, sizes, None), expected)
