"""The client's polygon masks: parsed from either protocol and filled back to the mask."""

from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_utils
from maskserve_client import Detection, PolygonMask
from maskserve_client._convert import detection_of
from maskserve_client.gen import segment_pb2 as pb

from maskserve.masks.polygon import polygons_of
from maskserve.masks.rle import Rle
from maskserve.result_json import mask_json


def rle_to_polygons(rle: dict, tolerance: float = 1.0) -> dict:
    """The polygon JSON of a pycocotools RLE, as the server answers it."""
    return mask_json(polygons_of(Rle.from_coco(rle), tolerance))


def rle(mask: np.ndarray) -> dict:
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": encoded["size"], "counts": encoded["counts"].decode("ascii")}


def scene() -> np.ndarray:
    yy, xx = np.mgrid[:90, :120]
    distance = (xx - 60) ** 2 + (yy - 45) ** 2
    mask = (distance < 40**2) & (distance >= 15**2) | (distance < 5**2)  # island in a hole
    mask[2:10, 100:118] = True
    mask[10, 118:120] = True  # touches the rectangle diagonally, reaches the border
    return mask


def test_exact_polygons_fill_back_to_the_mask() -> None:
    mask = scene()
    polygons = PolygonMask.from_json(rle_to_polygons(rle(mask), tolerance=0.0))
    np.testing.assert_array_equal(polygons.decode(), mask)
    rng = np.random.default_rng(3)
    noise = rng.random((30, 40)) < 0.5
    exact = PolygonMask.from_json(rle_to_polygons(rle(noise), tolerance=0.0))
    np.testing.assert_array_equal(exact.decode(), noise)


def test_polygon_json_round_trips_through_detection() -> None:
    body = {
        "class_id": 3,
        "label": "star",
        "score": 0.9,
        "box": [0, 0, 10, 10],
        "mask": rle_to_polygons(rle(scene())),
    }
    det = Detection.from_json(body)
    assert det.rle is None and det.polygons is not None and det.has_mask
    assert det.to_json()["mask"] == body["mask"]
    simplified = det.mask()
    assert (simplified & scene()).sum() / (simplified | scene()).sum() >= 0.95


def test_grpc_polygons_become_the_same_mask() -> None:
    data = rle_to_polygons(rle(scene()), tolerance=0.0)
    parts = [
        pb.Polygon(
            exterior=pb.Ring(coords=p["exterior"]), holes=[pb.Ring(coords=h) for h in p["holes"]]
        )
        for p in data["polygons"]
    ]
    message = pb.Detection(
        class_id=1,
        label="ring",
        score=0.5,
        box=pb.Box(x1=0, y1=0, x2=1, y2=1),
        mask=pb.Mask(height=90, width=120, polygons=pb.Polygons(polygons=parts)),
    )
    det = detection_of(message)
    assert det.rle is None
    np.testing.assert_array_equal(det.mask(), scene())
