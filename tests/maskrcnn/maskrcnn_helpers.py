"""Mask comparison helpers for the Mask R-CNN tests (pycocotools is the judge)."""

from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_utils
import torch


def coco_encode(masks: torch.Tensor) -> list[dict]:
    """pycocotools' RLEs of full masks [N, H, W], counts as str."""
    array = np.asfortranarray(masks.permute(1, 2, 0).cpu().numpy().astype(np.uint8))
    return [
        {"size": r["size"], "counts": r["counts"].decode("ascii")} for r in mask_utils.encode(array)
    ]


def decode(rles: list[dict]) -> np.ndarray:
    """[N, H, W] bool masks of string-count RLEs (pycocotools decodes)."""
    if not rles:
        return np.zeros((0, 0, 0), dtype=bool)
    encoded = [{"size": r["size"], "counts": r["counts"].encode()} for r in rles]
    return mask_utils.decode(encoded).transpose(2, 0, 1).astype(bool)


def mask_ious(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-mask IoU; two empty masks count as identical (1.0)."""
    inter = (a & b).reshape(len(a), -1).sum(1)
    union = (a | b).reshape(len(a), -1).sum(1)
    return np.where(union == 0, 1.0, inter / np.maximum(union, 1))
