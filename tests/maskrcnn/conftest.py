"""Mask R-CNN fixtures: seeded random networks made confident, and mask comparison helpers."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from maskrcnn_helpers import confident
from torchvision.models.detection import MaskRCNN

from maskserve.models.maskrcnn.config import MaskRcnnConfig
from maskserve.models.maskrcnn.network import build_maskrcnn
from maskserve.models.training.train_maskrcnn import shapes_maskrcnn_config


@pytest.fixture(scope="module")
def slim_config() -> MaskRcnnConfig:
    return replace(shapes_maskrcnn_config(), detections_per_img=30)


@pytest.fixture(scope="module")
def slim_model(slim_config: MaskRcnnConfig) -> MaskRCNN:
    torch.manual_seed(0)
    return confident(build_maskrcnn(slim_config))


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    """Two RGB images of different sizes and aspect ratios, with some structure."""
    rng = np.random.default_rng(7)
    out = []
    for height, width in ((240, 320), (300, 200)):
        base = rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8)
        out.append(np.kron(base, np.ones((8, 8, 1), dtype=np.uint8)))
    return out
