"""The reference's single-image preprocessing, batched: stretch to S×S, normalise."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from maskserve.models.yolact.config import YolactConfig

ImageInput = np.ndarray | torch.Tensor


def preprocess_images(
    images: Sequence[ImageInput], config: YolactConfig, device: torch.device
) -> torch.Tensor:
    """RGB uint8 [H, W, 3] images of any sizes → float32 [B, 3, S, S] network input.

    Bilinear with half-pixel centres and no antialias (``F.interpolate``), on the float
    image, ignoring aspect ratio; then (x − mean) / std per RGB channel, or x / 255.
    """
    size = config.max_size
    batch = []
    for image in images:
        pixels = torch.as_tensor(_wrappable(image)).to(device, non_blocking=True)
        if pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"expected an RGB image [H, W, 3], got {tuple(pixels.shape)}")
        chw = pixels.permute(2, 0, 1)[None].float().contiguous()
        batch.append(F.interpolate(chw, (size, size), mode="bilinear", align_corners=False))
    stacked = torch.cat(batch)
    if not config.normalize:
        return stacked / 255.0
    mean = torch.tensor(config.pixel_mean, device=device)[None, :, None, None]
    std = torch.tensor(config.pixel_std, device=device)[None, :, None, None]
    return (stacked - mean) / std


def _wrappable(image: ImageInput) -> ImageInput:
    """An array torch can wrap: a copy if read-only or with negative strides.

    A BGR image flipped to RGB with ``bgr[..., ::-1]`` has a negative channel stride,
    which ``torch.as_tensor`` refuses; torch also refuses to wrap read-only buffers safely.
    """
    if not isinstance(image, np.ndarray):
        return image
    if image.flags.writeable and all(stride >= 0 for stride in image.strides):
        return image
    return image.copy()
