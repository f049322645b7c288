"""Shared helpers for the mask-stage tests: pycocotools is the judge."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch

RLEs = list[dict]


def coco_encode(masks: torch.Tensor) -> RLEs:
    """pycocotools' RLEs of full masks [N, H, W] (the reference), counts as str."""
    array = np.asfortranarray(masks.permute(1, 2, 0).cpu().numpy().astype(np.uint8))
    return [
        {"size": r["size"], "counts": r["counts"].decode("ascii")} for r in mask_utils.encode(array)
    ]


def random_windows(rng: np.random.Generator, n: int, ph: int, pw: int) -> np.ndarray:
    """Proto windows (c0, r0, c1, r1) mixing every edge case the encoder must handle.

    Random boxes, full-proto windows, 1-pixel windows, windows touching each border,
    empty windows and windows with out-of-range coordinates.
    """
    c0 = rng.integers(0, pw, n)
    r0 = rng.integers(0, ph, n)
    c1 = c0 + 1 + rng.integers(0, pw - c0)
    r1 = r0 + 1 + rng.integers(0, ph - r0)
    windows = np.stack([c0, r0, c1, r1], 1)
    kinds = rng.integers(0, 10, n)
    windows[kinds == 1] = [0, 0, pw, ph]
    windows[kinds == 2, 2:] = windows[kinds == 2, :2] + 1
    windows[kinds == 3, 0] = 0
    windows[kinds == 4, 1] = 0
    windows[kinds == 5, 2] = pw
    windows[kinds == 6, 3] = ph
    windows[kinds == 7] = [-3, -2, pw + 4, ph + 1]
    windows[kinds == 8, 2] = windows[kinds == 8, 0]
    return windows


def random_lowres(
    rng: np.random.Generator, windows: np.ndarray, ph: int, pw: int, style: str
) -> torch.Tensor:
    """Soft masks, exactly zero outside their (clipped) windows.

    ``style``: "noise" (uniform), "smooth" (sigmoid of a smooth field, YOLACT-like) or
    "near" (values within 1e-6 of 0.5, where rounding decides).
    """
    n = windows.shape[0]
    if style == "noise":
        values = rng.random((n, ph, pw))
    elif style == "near":
        values = 0.5 + rng.normal(0.0, 1e-6, (n, ph, pw))
    else:
        coarse = torch.from_numpy(rng.normal(0.0, 3.0, (n, 1, 6, 6)))
        field = torch.nn.functional.interpolate(coarse, size=(ph, pw), mode="bicubic")
        values = torch.sigmoid(field[:, 0]).numpy()
    keep = np.zeros((n, ph, pw), dtype=bool)
    for i, (c0, r0, c1, r1) in enumerate(windows.tolist()):
        keep[i, max(r0, 0) : max(r1, 0), max(c0, 0) : max(c1, 0)] = True
    return torch.from_numpy((values * keep).astype(np.float32))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261125)


@pytest.fixture
def reference() -> Callable[[torch.Tensor], RLEs]:
    return coco_encode


@pytest.fixture
def make_inputs(
    rng: np.random.Generator,
) -> Callable[[int, int, int, str], tuple[torch.Tensor, torch.Tensor]]:
    def make(n: int, ph: int, pw: int, style: str = "noise") -> tuple[torch.Tensor, torch.Tensor]:
        windows = random_windows(rng, n, ph, pw)
        return random_lowres(rng, windows, ph, pw, style), torch.from_numpy(windows)

    return make
