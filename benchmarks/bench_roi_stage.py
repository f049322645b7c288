"""torchvision's ``RoIHeads.forward`` vs maskserve's ``roi_stage.run_roi_heads``, same inputs.

Usage::

    .venv/bin/python benchmarks/bench_roi_stage.py [--rounds 6] [--threads 2]

A torchvision Mask R-CNN R50-FPN with random weights (``torch.manual_seed(0)``), as in
``bench_vs_litserve.py``: score threshold 0 and 20 detections per image, one 480×640
image resized to 800 px, channels-last features. The backbone and RPN run once; then each
round times both ROI stages on the same features and proposals, order alternating. The
answers are compared for equality (boxes, labels, scores, masks) in every round.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from interleaved import median_lines, timed_rounds
from torchvision.models.detection import maskrcnn_resnet50_fpn

from maskserve.models.maskrcnn.roi_stage import run_roi_heads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = maskrcnn_resnet50_fpn(
        weights=None,
        weights_backbone=None,
        num_classes=91,
        box_score_thresh=0.0,
        box_detections_per_img=20,
    ).eval()
    model = model.to(memory_format=torch.channels_last)
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    tensor = torch.from_numpy(image).permute(2, 0, 1).float().div(255)
    pool = ThreadPoolExecutor(args.threads)
    with torch.inference_mode():
        batch = model.transform([tensor])[0]
        features = model.backbone(batch.tensors.contiguous(memory_format=torch.channels_last))
        proposals, _ = model.rpn(batch, features)
        sizes = batch.image_sizes

        def theirs() -> list[dict[str, torch.Tensor]]:
            return model.roi_heads(features, proposals, sizes)[0]

        def ours() -> list[dict[str, torch.Tensor]]:
            return run_roi_heads(model.roi_heads, features, proposals, sizes, pool)

        def same(answers: dict[str, list[dict[str, torch.Tensor]]]) -> None:
            for key in ("boxes", "labels", "scores", "masks"):
                equal = torch.equal(answers["torchvision"][0][key], answers["roi_stage"][0][key])
                assert equal, f"{key} differ"

        times = timed_rounds({"torchvision": theirs, "roi_stage": ours}, args.rounds, same)
    print(
        f"{len(proposals[0])} proposals, {args.threads} threads, {args.rounds} rounds; "
        "answers equal in every round"
    )
    print("\n".join(median_lines(times, "torchvision")))


if __name__ == "__main__":
    main()
