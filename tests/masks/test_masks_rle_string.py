"""compress_counts / decompress_counts against pycocotools, byte for byte."""

from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_utils
import pytest

from maskserve.masks.rle_string import compress_counts, decompress_counts


def counts_of(mask: np.ndarray) -> np.ndarray:
    """Uncompressed COCO counts of a 2-D mask, computed independently with numpy."""
    flat = mask.flatten(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    counts = np.diff(np.r_[0, changes, flat.size])
    return np.r_[0, counts] if flat[0] == 1 else counts


def coco_string(mask: np.ndarray) -> bytes:
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"]


def test_worked_example_4x5() -> None:
    mask = np.array(
        [[0, 0, 1, 1, 0], [0, 1, 1, 1, 0], [0, 1, 1, 0, 0], [0, 0, 0, 0, 1]], dtype=np.uint8
    )
    counts = counts_of(mask)
    assert counts.tolist() == [5, 2, 1, 3, 1, 2, 5, 1]
    assert compress_counts(counts, np.array([8])) == [b"52110O4O"] == [coco_string(mask)]
    assert decompress_counts("52110O4O").tolist() == counts.tolist()


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ([12], b"<"),
        ([0, 12], b"0<"),
        ([0, 1, 1, 2], b"0111"),
        ([0, 5000, 10, 3], b"0Xl4:kSK"),
        ([1020, *([50] * 59), 6030], b"lo0b1b1" + b"0" * 57 + b"lj5"),
    ],
)
def test_documented_strings(counts: list[int], expected: bytes) -> None:
    assert compress_counts(np.array(counts), np.array([len(counts)])) == [expected]
    assert decompress_counts(expected).tolist() == counts


def test_extreme_values_match_pycocotools() -> None:
    """Values needing 7 groups, large negative deltas and the sign-bit extra group."""
    cases = [
        [2**32 - 1, 1],
        [0, 2**32 - 2, 1],
        [7, 2**31, 3, 1, 2**31 + 5, 1],
        [1, 1, 15, 16, 31, 32, 1020, 2**20, 1, 2**25, 511, 512],
    ]
    lengths = np.array([len(c) for c in cases])
    ours = compress_counts(np.concatenate([np.array(c, dtype=np.int64) for c in cases]), lengths)
    for counts, got in zip(cases, ours, strict=True):
        rle = mask_utils.frPyObjects({"size": [1, int(sum(counts))], "counts": counts}, 1, 1)
        assert got == rle["counts"], counts
        assert decompress_counts(got).tolist() == counts


def test_random_masks_batch(rng: np.random.Generator) -> None:
    masks = []
    for height, width in [(1, 1), (4, 5), (37, 53), (53, 37), (1, 200), (200, 1), (120, 160)]:
        masks.append(rng.random((height, width)) < 0.5)
        masks.append(rng.random((height, width)) < 0.03)
        masks.append(np.zeros((height, width), dtype=bool))
        masks.append(np.ones((height, width), dtype=bool))
        blob = np.zeros((height, width), dtype=bool)
        blob[height // 4 : 3 * height // 4 + 1, width // 5 : width // 2 + 1] = True
        blob[0, 0] = True
        masks.append(blob)
    counts = [counts_of(m) for m in masks]
    ours = compress_counts(np.concatenate(counts), np.array([len(c) for c in counts]))
    assert len(ours) == len(masks)
    for mask, c, got in zip(masks, counts, ours, strict=True):
        expected = coco_string(mask)
        assert got == expected
        assert decompress_counts(expected).tolist() == c.tolist()
        assert decompress_counts(expected.decode("ascii")).sum() == mask.size


def test_empty_and_invalid_inputs() -> None:
    assert compress_counts(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)) == []
    with pytest.raises(ValueError):
        compress_counts(np.array([1, 2, 3]), np.array([2]))
    assert decompress_counts(b"").shape == (0,)
    with pytest.raises(ValueError):
        decompress_counts("5 2")
    with pytest.raises(ValueError):
        decompress_counts("5P")
