"""Mask assembly: protos @ coefficientsᵀ → sigmoid → crop by box (→ resize → threshold).

The low-resolution cropped masks are the model's product; turning them into full-size
masks (:func:`upsample_masks`) is the reference path, and the server's encoder reaches
the same pixels by upsampling only inside :func:`proto_windows`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CROP_PADDING = 1.0


def crop_bounds(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Float crop bounds [N, 4] (x_lo, y_lo, x_hi, y_hi) in prototype pixels, 1 px padded."""
    xs, ys = boxes[:, 0::2] * width, boxes[:, 1::2] * height
    x_lo = (xs.amin(dim=1) - CROP_PADDING).clamp(min=0)
    x_hi = (xs.amax(dim=1) + CROP_PADDING).clamp(max=width)
    y_lo = (ys.amin(dim=1) - CROP_PADDING).clamp(min=0)
    y_hi = (ys.amax(dim=1) + CROP_PADDING).clamp(max=height)
    return torch.stack((x_lo, y_lo, x_hi, y_hi), dim=1)


def proto_windows(bounds: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Integer half-open windows (c0, r0, c1, r1) of the pixels kept by ``bounds``.

    Pixel c is kept iff lo ≤ c < hi, i.e. ceil(lo) ≤ c ≤ ceil(hi) − 1.
    """
    windows = torch.ceil(bounds).long()
    limits = torch.tensor([width, height, width, height], device=bounds.device)
    windows = torch.minimum(windows.clamp(min=0), limits)
    windows[:, 2:] = torch.maximum(windows[:, 2:], windows[:, :2])
    return windows


def assemble_masks(proto: torch.Tensor, coeffs: torch.Tensor, boxes: torch.Tensor) -> tuple:
    """Cropped soft masks for a batch.

    Args:
        proto: [B, h, w, k] channels-last prototypes.
        coeffs: [B, N, k] coefficients (zero-padded where an image has fewer detections).
        boxes: [B, N, 4] relative point-form boxes.

    Returns:
        (masks [B, N, h, w] float32 soft masks zero outside each crop,
         windows [B, N, 4] int64 half-open proto-pixel windows).
    """
    batch, height, width, k = proto.shape
    logits = torch.bmm(
        proto.reshape(batch, height * width, k).float(), coeffs.float().transpose(1, 2)
    )
    masks = torch.sigmoid(logits).transpose(1, 2).reshape(batch, -1, height, width)
    bounds = crop_bounds(boxes.reshape(-1, 4).float(), height, width)
    cols = torch.arange(width, device=proto.device)
    rows = torch.arange(height, device=proto.device)
    keep_cols = (cols[None, :] >= bounds[:, 0:1]) & (cols[None, :] < bounds[:, 2:3])
    keep_rows = (rows[None, :] >= bounds[:, 1:2]) & (rows[None, :] < bounds[:, 3:4])
    keep = keep_rows[:, :, None] & keep_cols[:, None, :]
    masks = masks * keep.reshape(batch, -1, height, width).to(masks.dtype)
    windows = proto_windows(bounds, height, width).reshape(batch, -1, 4)
    return masks, windows


def upsample_masks(
    lowres: torch.Tensor, image_size: tuple[int, int], threshold: float = 0.5
) -> torch.Tensor:
    """Reference full-size masks: bilinear resize (no antialias) then ``> threshold``."""
    if lowres.shape[0] == 0:
        return torch.zeros((0, *image_size), dtype=torch.bool, device=lowres.device)
    full = F.interpolate(
        lowres[None].float(), size=image_size, mode="bilinear", align_corners=False
    )
    return full[0] > threshold


def boxes_to_pixels(boxes: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Relative boxes → integer pixel boxes, truncated and clamped as the reference does."""
    height, width = image_size
    xs = (boxes[:, 0::2] * width).long()
    ys = (boxes[:, 1::2] * height).long()
    x1 = xs.amin(dim=1).clamp(min=0)
    x2 = xs.amax(dim=1).clamp(max=width)
    y1 = ys.amin(dim=1).clamp(min=0)
    y2 = ys.amax(dim=1).clamp(max=height)
    return torch.stack((x1, y1, x2, y2), dim=1)
