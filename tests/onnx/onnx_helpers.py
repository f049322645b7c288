"""Helpers for the ONNX tests: tiny configs and random networks, test images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from maskserve.models.registry import ModelSpec, find_model
from maskserve.models.yolact.config import YolactConfig
from maskserve.models.yolact.config_io import config_from_dict
from maskserve.models.yolact.network import Yolact


def tiny_config(spec: ModelSpec, deformable: bool, maskiou: bool, size: int) -> YolactConfig:
    """The shipped config table, shrunk; YOLACT++-style when asked (DCN + mask re-scoring)."""
    table = dict(spec.table)
    backbone = dict(table["backbone"], widths=[8, 16, 16, 16], stem_width=8)
    if deformable:
        backbone.update(deform_layers=[0, 1, 1, 2], deform_interval=1)
    table.update(
        name=f"tiny_{'plus' if deformable else 'plain'}_{size}",
        backbone=backbone,
        max_size=size,
        fpn_channels=16,
        proto_channels=16,
        head_channels=16,
        mask_dim=8,
        use_maskiou=maskiou,
    )
    return config_from_dict(table)


def random_model(config: YolactConfig, seed: int = 0) -> Yolact:
    """A randomly initialised network; DCN offsets non-zero so the deformation matters."""
    torch.manual_seed(seed)
    model = Yolact(config).eval()
    for module in model.modules():
        if hasattr(module, "conv_offset_mask"):
            nn.init.normal_(module.conv_offset_mask.weight, std=0.1)
        if isinstance(module, nn.BatchNorm2d):
            nn.init.uniform_(module.running_var, 0.5, 1.5)
            nn.init.normal_(module.running_mean, std=0.1)
    return model


def sample_images(seed: int, sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    from maskserve.models.synthetic import generate_sample

    rng = np.random.default_rng(seed)
    return [generate_sample(rng, h, w).image for h, w in sizes]


def example_image() -> np.ndarray:
    from PIL import Image

    path = Path(find_model("yolact_shapes").folder) / "example.png"
    return np.asarray(Image.open(path).convert("RGB"))
