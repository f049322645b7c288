"""Masks → polygons with holes: pycocotools rasterises them back to the mask."""

from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_utils
import pytest

from maskserve.masks.polygon import polygons_of, simplify_ring
from maskserve.masks.polygon_trace import signed_area, trace_rings
from maskserve.masks.rle import Rle
from maskserve.result_json import mask_json


def rle_to_polygons(rle: dict, tolerance: float = 1.0) -> dict:
    """The polygon JSON of a pycocotools RLE, as the server answers it."""
    return mask_json(polygons_of(Rle.from_coco(rle), tolerance))


def coco_rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def rasterise(polygons: dict) -> np.ndarray:
    """The union of every part's exterior minus its holes, each ring by pycocotools."""
    height, width = polygons["size"]

    def ring(coords: list[float]) -> np.ndarray:
        return mask_utils.decode(mask_utils.frPyObjects([coords], height, width))[:, :, 0] > 0

    out = np.zeros((height, width), dtype=bool)
    for part in polygons["polygons"]:
        area = ring(part["exterior"])
        for hole in part["holes"]:
            area &= ~ring(hole)
        out |= area
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def disk(shape: tuple[int, int], cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (xx - cx) ** 2 + (yy - cy) ** 2 < r**2


def shapes_with_holes() -> dict[str, np.ndarray]:
    """Synthetic masks: holes, an island inside a hole, parts touching diagonally, the
    image border, thin lines, a single pixel."""
    shape = (120, 160)
    ring = disk(shape, 60, 60, 45) & ~disk(shape, 60, 60, 20)
    island = ring | disk(shape, 60, 60, 8)
    frame = np.zeros(shape, dtype=bool)
    frame[10:90, 100:150] = True
    frame[30:50, 110:140] = False
    frame[60:80, 115:135] = False
    diagonal = np.zeros(shape, dtype=bool)
    diagonal[20:40, 20:40] = True
    diagonal[40:60, 40:60] = True  # touches the first square at one corner only
    border = np.ones(shape, dtype=bool)
    border[50:70, 70:90] = False
    thin = np.zeros(shape, dtype=bool)
    thin[5, 5:100] = True
    thin[5:100, 120] = True
    single = np.zeros(shape, dtype=bool)
    single[7, 9] = True
    return {
        "ring": ring,
        "island_in_hole": island,
        "frame_two_holes": frame,
        "diagonal_touch": diagonal,
        "whole_image_with_hole": border,
        "thin_lines": thin,
        "single_pixel": single,
        "two_rings": ring | np.roll(ring, 20, axis=0) & ~ring,
    }


@pytest.mark.parametrize("name", sorted(shapes_with_holes()))
def test_exact_boundary_rasterises_to_the_mask(name: str) -> None:
    mask = shapes_with_holes()[name]
    polygons = rle_to_polygons(coco_rle(mask), tolerance=0.0)
    np.testing.assert_array_equal(rasterise(polygons), mask)


@pytest.mark.parametrize("name", sorted(shapes_with_holes()))
def test_simplified_polygons_keep_iou(name: str) -> None:
    mask = shapes_with_holes()[name]
    polygons = rle_to_polygons(coco_rle(mask))  # the default tolerance, 1 px
    assert iou(rasterise(polygons), mask) >= 0.95


def test_holes_are_named_and_owned() -> None:
    polygons = rle_to_polygons(coco_rle(shapes_with_holes()["island_in_hole"]), tolerance=1.0)
    assert polygons["type"] == "polygon" and polygons["size"] == [120, 160]
    parts = polygons["polygons"]
    assert [len(p["holes"]) for p in parts] == [1, 0]  # the ring with its hole, the island
    frame = rle_to_polygons(coco_rle(shapes_with_holes()["frame_two_holes"]))["polygons"]
    assert [len(p["holes"]) for p in frame] == [2]


def test_orientation_and_coordinates() -> None:
    mask = np.zeros((6, 8), dtype=bool)
    mask[1:3, 2:6] = True  # x 2..5, y 1..2
    (exterior, holes), *rest = [
        (np.reshape(p["exterior"], (-1, 2)), p["holes"])
        for p in rle_to_polygons(coco_rle(mask), 0.0)["polygons"]
    ]
    assert not rest and not holes
    assert signed_area(exterior) > 0  # clockwise on screen
    assert exterior[:, 0].min() == 2 and exterior[:, 0].max() == 6
    assert exterior[:, 1].min() == 1 and exterior[:, 1].max() == 3
    rings, _ = trace_rings(~np.pad(mask, 1, constant_values=True))
    assert sorted(signed_area(r) > 0 for r in rings) == [False, True]  # a hole runs backwards


def test_diagonal_touch_is_one_part() -> None:
    """8-connected foreground, as OpenCV's findContours."""
    parts = rle_to_polygons(coco_rle(shapes_with_holes()["diagonal_touch"]), 0.0)["polygons"]
    assert len(parts) == 1


def test_empty_mask_has_no_polygons() -> None:
    empty = np.zeros((30, 40), dtype=bool)
    assert rle_to_polygons(coco_rle(empty)) == {"type": "polygon", "size": [30, 40], "polygons": []}


def test_larger_tolerance_means_fewer_points() -> None:
    mask = disk((200, 300), 150, 100, 80)
    counts = [
        len(rle_to_polygons(coco_rle(mask), t)["polygons"][0]["exterior"])
        for t in (0.0, 0.5, 1.0, 3.0)
    ]
    assert counts == sorted(counts, reverse=True) and counts[-1] < counts[0] // 4


def test_simplify_keeps_a_ring_it_would_flatten() -> None:
    square = np.array([[0.5, 0.0], [1.0, 0.5], [0.5, 1.0], [0.0, 0.5]])  # one pixel
    np.testing.assert_array_equal(simplify_ring(square, 5.0), square)


def test_random_masks_exact_at_zero_tolerance() -> None:
    rng = np.random.default_rng(7)
    for density in (0.2, 0.5, 0.8):
        mask = rng.random((40, 50)) < density
        np.testing.assert_array_equal(rasterise(rle_to_polygons(coco_rle(mask), 0.0)), mask)
