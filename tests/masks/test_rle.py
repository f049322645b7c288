"""The typed RLE: the encoder keeps each mask's run lengths beside its compressed string,
equal to pycocotools' decoding of that string; the COCO dict round-trips."""

from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_utils
import torch

from maskserve.masks import decompress_counts, encode_full_masks
from maskserve.masks.encode import encode_masks_with_areas
from maskserve.masks.rle import Rle


def random_masks(count: int, height: int, width: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.random((count, height, width)) > 0.6)


def test_kept_runs_are_the_strings_runs() -> None:
    lowres = torch.from_numpy(np.random.default_rng(3).normal(size=(5, 20, 30))).float()
    windows = torch.tensor([[0, 0, 30, 20]] * 5, dtype=torch.float32)
    encoded = encode_masks_with_areas(lowres, windows, (47, 61), 0.5)
    assert len(encoded.masks) == 5
    for mask, coco in zip(encoded.masks, encoded.rles, strict=True):
        assert mask.runs is not None
        np.testing.assert_array_equal(mask.runs, decompress_counts(mask.counts))
        decoded = mask_utils.decode({"size": coco["size"], "counts": mask.counts})
        assert int(mask.runs[1::2].sum()) == int(decoded.sum())
        assert (mask.height, mask.width) == (47, 61)


def test_coco_round_trip_and_equality_ignore_the_cache() -> None:
    (coco,) = encode_full_masks(random_masks(1, 9, 7, 1))
    rle = Rle.from_coco(coco)
    assert rle.to_coco() == coco
    assert rle.runs is None  # from a string: decompressed when asked
    with_runs = Rle(rle.height, rle.width, rle.counts, rle.run_lengths())
    assert with_runs == rle and hash(with_runs) == hash(rle)
    np.testing.assert_array_equal(with_runs.run_lengths(), rle.run_lengths())
