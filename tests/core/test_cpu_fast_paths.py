"""The CPU fast paths of the eager backends keep the shipped models' answers.

Channels-last convolutions with BatchNorm folded into them (the CPU default) round
differently from NCHW, and bfloat16
(``dtype = "bfloat16"``) more so; on the trained shipped models neither may change what is
found: every confident float32 NCHW detection is found again, same class, box within a
few pixels, mask IoU high. (Exact parity with the reference code is tested with
channels-last off, in tests/yolact and tests/maskrcnn.)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from maskserve.masks import detection_masks
from maskserve.models.maskrcnn.backend import MaskRcnnBackend
from maskserve.models.registry import ZOO_DIR, ModelSpec, build_backend
from maskserve.models.types import Detections
from maskserve.models.yolact.backend import YolactBackend

EXAMPLE = ZOO_DIR / "yolact_shapes" / "example.png"
# (box tolerance px, min mask IoU) per variant
TOLERANCE = {"channels_last": (0.5, 0.99), "bfloat16": (3.0, 0.9)}


def masks_of(found: Detections) -> np.ndarray:
    return detection_masks(found).cpu().numpy().astype(bool)


def assert_found_again(reference: Detections, other: Detections, variant: str) -> None:
    box_tol, min_iou = TOLERANCE[variant]
    confident = [i for i, s in enumerate(reference.scores.tolist()) if s > 0.5]
    assert len(confident) >= 3
    ref_masks, other_masks = masks_of(reference), masks_of(other)
    for i in confident:
        box = reference.boxes[i]
        near = (other.class_ids == reference.class_ids[i]) & (
            (other.boxes - box).abs().amax(dim=1) <= box_tol
        )
        assert bool(near.any()), f"{variant}: detection {i} {box.tolist()} not found again"
        j = int(torch.nonzero(near)[0])
        a, b = ref_masks[i], other_masks[j]
        iou = np.logical_and(a, b).sum() / max(1, np.logical_or(a, b).sum())
        assert iou >= min_iou, f"{variant}: detection {i} mask IoU {iou:.3f}"


def backend(name: str, dtype: torch.dtype, channels_last: bool) -> YolactBackend | MaskRcnnBackend:
    spec = ModelSpec.from_folder(ZOO_DIR / name)
    built = build_backend(spec, torch.device("cpu"), dtype, channels_last=channels_last)
    return built  # type: ignore[return-value]


@pytest.mark.parametrize("name", ["yolact_shapes", "maskrcnn_shapes"])
@pytest.mark.parametrize("variant", ["channels_last", "bfloat16"])
def test_fast_paths_find_the_same_objects(name: str, variant: str) -> None:
    if not (ZOO_DIR / name / "model.toml").is_file():
        pytest.skip(f"needs the shipped model {name}")
    image = np.asarray(Image.open(EXAMPLE).convert("RGB"))
    reference = backend(name, torch.float32, channels_last=False).infer([image], 100)[0]
    dtype = torch.bfloat16 if variant == "bfloat16" else torch.float32
    fast = backend(name, dtype, channels_last=True)
    assert fast.predictor.memory_format is torch.channels_last
    assert_found_again(reference, fast.infer([image], 100)[0], variant)
