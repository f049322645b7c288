"""Mask assembly + the server's encoder == a plain full-size ``process_mask_native``.

The reference below is written from the description of Ultralytics' retina-mask path
(``shared/reference/yoloseg.md`` §4.2) with full-size tensors; maskserve never builds
those (the encoder resizes and crops window by window), so the two must agree bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_utils

from maskserve.masks.encode import detection_masks, encode_detections
from maskserve.models.yoloseg.assemble import assemble_image, upsample_factor
from maskserve.models.yoloseg.decode import Candidates, boxes_to_original
from maskserve.models.yoloseg.preprocess import letterbox_geometry

INPUT = (320, 320)


def reference_masks(
    protos: torch.Tensor, coeffs: torch.Tensor, boxes: torch.Tensor, hw: tuple[int, int]
) -> torch.Tensor:
    """Full-size bool masks: logits, ×f, padding crop, resize, > 0, box crop."""
    nm, mh, mw = protos.shape
    logits = (coeffs @ protos.reshape(nm, -1)).reshape(1, -1, mh, mw)
    gain = min(4 * mh / hw[0], 4 * mw / hw[1])
    pad = (4 * mh - max(round(hw[0] * gain), 1)) | (4 * mw - max(round(hw[1] * gain), 1))
    f = 4 // math.gcd(4, pad | pad // 2)
    if f > 1:
        logits = F.interpolate(logits, scale_factor=f, mode="bilinear")
    gh, gw = logits.shape[2:]
    g = min(gh / hw[0], gw / hw[1])
    ch, cw = max(round(hw[0] * g), 1), max(round(hw[1] * g), 1)
    top, left = round((gh - ch) / 2 - 0.1), round((gw - cw) / 2 - 0.1)
    if (gh, gw) != hw:
        logits = F.interpolate(logits[..., top : top + ch, left : left + cw], hw, mode="bilinear")
    masks = logits[0] > 0
    cols, rows = torch.arange(hw[1])[None, None], torch.arange(hw[0])[None, :, None]
    x1, y1, x2, y2 = (boxes[:, i, None, None] for i in range(4))
    return masks & (cols >= x1) & (cols < x2) & (rows >= y1) & (rows < y2)


@pytest.mark.parametrize("hw", [(240, 320), (333, 251), (201, 397), (320, 320), (97, 64)])
def test_encoded_masks_equal_the_full_size_reference(hw: tuple[int, int]) -> None:
    gen = torch.Generator().manual_seed(hw[0] * 1000 + hw[1])
    protos = torch.randn(32, INPUT[0] // 4, INPUT[1] // 4, generator=gen)
    n = 12
    coeffs = torch.randn(n, 32, generator=gen) * 0.5
    xy = torch.rand(n, 2, generator=gen) * 250
    boxes = torch.cat([xy, xy + 10 + torch.rand(n, 2, generator=gen) * 120], dim=1)
    found = Candidates(
        boxes=boxes,
        scores=torch.linspace(0.9, 0.3, n),
        class_ids=torch.zeros(n, dtype=torch.int64),
        coeffs=coeffs,
    )
    box = letterbox_geometry(hw, INPUT)
    detections = assemble_image(protos, found, box, INPUT, ("shape",))
    original = boxes_to_original(boxes, box)
    expected = reference_masks(protos, coeffs, original, hw)
    kept = expected.flatten(1).any(dim=1)
    # every empty reference mask is dropped, every dropped one was empty
    assert len(detections) <= n
    assert kept.sum() <= len(detections)
    full = detection_masks(detections)
    encoded = encode_detections(detections).rles
    order = torch.nonzero((original[:, None] == detections.boxes[None]).all(dim=2), as_tuple=False)
    for j, (rle, mask) in enumerate(zip(encoded, full, strict=True)):
        i = int(order[order[:, 1] == j][0, 0])
        assert np.array_equal(mask_utils.decode(rle).astype(bool), expected[i].numpy()), (hw, j)
        assert torch.equal(mask, expected[i]), (hw, j)


def test_upsample_factor_follows_the_padding_parity() -> None:
    assert upsample_factor((80, 80), (320, 320)) == 1
    assert upsample_factor((80, 80), (240, 320)) == 1  # 80 px of padding
    assert upsample_factor((80, 80), (333, 251)) in (2, 4)
