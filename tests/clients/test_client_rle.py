"""maskserve_client.rle against pycocotools: decode, encode, raw runs, malformed input."""

from __future__ import annotations

import numpy as np
import pytest
from client_stubs import coco_rle, disk_mask, reference_runs
from maskserve_client import rle
from maskserve_client.types import Detection, Rle
from pycocotools import mask as coco_mask


def random_masks(seed: int, count: int) -> list[np.ndarray]:
    """Noise of every density, blobs, stripes: short and long runs, both first-pixel states."""
    rng = np.random.default_rng(seed)
    masks = []
    for _ in range(count):
        height, width = (int(v) for v in rng.integers(1, 90, size=2))
        kind = rng.integers(3)
        if kind == 0:
            mask = rng.random((height, width)) < rng.random()
        elif kind == 1:
            cy, cx = rng.integers(0, height), rng.integers(0, width)
            mask = disk_mask(height, width, cy, cx, int(rng.integers(1, 60)))
        else:
            mask = (np.arange(width)[None, :] // int(rng.integers(1, 9)) % 2 == 0).repeat(height, 0)
        masks.append(mask)
    return masks


EDGE_CASES = {
    "empty": np.zeros((7, 5), dtype=bool),
    "full": np.ones((7, 5), dtype=bool),
    "first_pixel": np.pad(np.ones((1, 1), dtype=bool), ((0, 6), (0, 4))),
    "last_pixel": np.pad(np.ones((1, 1), dtype=bool), ((6, 0), (4, 0))),
    "one_by_one_set": np.ones((1, 1), dtype=bool),
    "one_by_one_clear": np.zeros((1, 1), dtype=bool),
    "row": np.array([[0, 1, 1, 0, 1, 0, 0, 1]], dtype=bool),
    "column": np.array([[1], [1], [0], [1], [0]], dtype=bool),
    "checkerboard": (np.indices((33, 17)).sum(axis=0) % 2).astype(bool),
    # 1020-pixel leading run and 6030-pixel tail: multi-character values.
    "long_runs": np.pad(np.ones((50, 30), dtype=bool), ((20, 30), (10, 60))),
    # A long run followed by short ones: large negative deltas.
    "negative_deltas": np.concatenate(
        [np.ones((400, 20), dtype=bool), np.tile([[True], [False]], (200, 20))], axis=1
    ),
}


def assert_matches_pycocotools(mask: np.ndarray) -> None:
    reference = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    as_bytes = {"size": reference["size"], "counts": reference["counts"]}
    as_str = {"size": reference["size"], "counts": reference["counts"].decode()}

    assert np.array_equal(rle.decode(as_bytes), mask)
    assert np.array_equal(rle.decode(as_str), mask)
    encoded = rle.encode(mask)
    assert encoded == {"size": [int(v) for v in reference["size"]], "counts": as_str["counts"]}
    assert np.array_equal(coco_mask.decode(encoded), mask)
    assert rle.area(as_str) == int(coco_mask.area(reference))


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_edge_cases_match_pycocotools(name: str) -> None:
    assert_matches_pycocotools(EDGE_CASES[name])


def test_random_masks_match_pycocotools() -> None:
    for index, mask in enumerate(random_masks(0, 300)):
        try:
            assert_matches_pycocotools(mask)
        except AssertionError as exc:
            raise AssertionError(f"random mask {index} ({mask.shape})") from exc


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_raw_runs_decode_like_the_compressed_string(name: str) -> None:
    mask = EDGE_CASES[name]
    runs = reference_runs(mask)
    assert rle.runs_of(mask).tolist() == runs
    decoded = rle.decode_counts(np.asarray(runs, dtype=np.uint32), mask.shape)
    assert decoded.dtype == np.bool_ and decoded.shape == mask.shape
    assert np.array_equal(decoded, mask)
    assert np.array_equal(rle.decode({"size": list(mask.shape), "counts": runs}), mask)


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        (b"52110O4O", [5, 2, 1, 3, 1, 2, 5, 1]),
        (b"0Xl4:kSK", [0, 5000, 10, 3]),
        (b"<", [12]),
        (b"0<", [0, 12]),
    ],
)
def test_decompress_documented_examples(counts: bytes, expected: list[int]) -> None:
    assert rle.decompress(counts).tolist() == expected
    assert rle.compress(expected) == counts.decode()


def test_compress_values_near_the_uint32_limit_like_pycocotools() -> None:
    runs = [1, 4_000_000_000, 2, 3, 200_000_000, 7, 90_000_000]
    width = sum(runs)
    reference = coco_mask.frPyObjects({"size": [1, width], "counts": runs}, 1, width)
    assert rle.compress(runs) == reference["counts"].decode()
    assert rle.decompress(reference["counts"]).tolist() == runs


@pytest.mark.parametrize(
    ("counts", "size", "reason"),
    [
        ("5 2", (2, 4), "outside ASCII"),
        ("5P", (2, 4), "middle of a value"),
        ("54", (2, 4), "cover 9 pixels"),
        ("", (2, 4), "cover 0 pixels"),
        ([3, -1, 6], (2, 4), "negative"),
        ([5], (-1, -5), "negative mask size"),
        ("P" * 12 + "0", (1, 1), "longer than"),
    ],
)
def test_malformed_rles_are_refused(counts: object, size: tuple[int, int], reason: str) -> None:
    with pytest.raises(rle.RleError, match=reason):
        rle.decode_counts(counts, size)  # type: ignore[arg-type]


def test_detection_mask_is_decoded_from_json() -> None:
    mask = disk_mask(30, 40, 12, 25, 8)
    detection = Detection.from_json(
        {"class_id": 2, "label": "disk", "score": 0.5, "box": [0, 0, 1, 1], "mask": coco_rle(mask)}
    )
    assert detection.has_mask
    assert np.array_equal(detection.mask(), mask)
    assert detection.rle is not None and detection.rle.area() == int(mask.sum())
    no_mask = Detection.from_json({"class_id": 0, "score": 0.1, "box": [0, 0, 1, 1], "mask": None})
    assert not no_mask.has_mask
    with pytest.raises(ValueError, match="no mask"):
        no_mask.mask()


def test_raw_runs_serialise_as_the_compressed_string() -> None:
    mask = disk_mask(20, 20, 10, 10, 5)
    runs = Rle(20, 20, np.asarray(reference_runs(mask)))
    assert runs.to_json() == coco_rle(mask)
