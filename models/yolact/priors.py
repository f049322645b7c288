"""Anchor priors in relative centre-size form, generated exactly as the reference does."""

from __future__ import annotations

import math

import torch

from maskserve.models.yolact.config import YolactConfig


def make_priors(
    config: YolactConfig, level_sizes: list[tuple[int, int]], device: torch.device | None = None
) -> torch.Tensor:
    """Priors [P, 4] (cx, cy, w, h) for feature maps of ``level_sizes`` (P3 first).

    Order: level, row, column, then scale (outer) × aspect ratio (inner). v1 configs keep
    the reference's square-anchor bug (h := w).
    """
    rows: list[list[float]] = []
    for (height, width), scales in zip(level_sizes, config.anchor_scales, strict=True):
        for j in range(height):
            for i in range(width):
                cx, cy = (i + 0.5) / width, (j + 0.5) / height
                for scale in scales:
                    for ratio in config.aspect_ratios:
                        r = math.sqrt(ratio)
                        w = scale * r / config.max_size
                        h = w if config.square_anchors else scale / r / config.max_size
                        rows.append([cx, cy, w, h])
    return torch.tensor(rows, dtype=torch.float32, device=device)
