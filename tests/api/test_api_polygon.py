"""``mask_format=polygon`` over REST and gRPC: the shipped model's masks of the shipped
example image come back as polygons that pycocotools rasterises to the RLE masks."""

from __future__ import annotations

import io

import grpc
import httpx
import numpy as np
import pycocotools.mask as mask_utils
import pytest
from api_harness import MODEL, SHIPPED, RunningServer, metric, needs_shipped_model
from PIL import Image

from maskserve.api.gen import segment_pb2 as pb
from maskserve.api.gen import segment_pb2_grpc as pb_grpc

pytestmark = needs_shipped_model
SEGMENT = f"/v1/models/{MODEL}/segment"


@pytest.fixture(scope="module")
def example() -> bytes:
    """The shipped example image, as lossless WebP: the same pixels in fewer bytes than
    its PNG, which is over the test server's body limit."""
    pixels = np.asarray(Image.open(SHIPPED / "example.png").convert("RGB"))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="WEBP", lossless=True)
    return buffer.getvalue()


def post(server: RunningServer, image: bytes, **params: object) -> httpx.Response:
    return httpx.post(
        server.http_url + SEGMENT,
        content=image,
        params=params,
        headers={"content-type": "image/webp"},
        timeout=60,
    )


def rasterise(height: int, width: int, parts: list[tuple[list[float], list[list[float]]]]):
    def ring(coords: list[float]) -> np.ndarray:
        return mask_utils.decode(mask_utils.frPyObjects([coords], height, width))[:, :, 0] > 0

    out = np.zeros((height, width), dtype=bool)
    for exterior, holes in parts:
        area = ring(exterior)
        for hole in holes:
            area &= ~ring(hole)
        out |= area
    return out


def invalid_options(server: RunningServer) -> float:
    labels = {"model": MODEL, "protocol": "rest", "status": "invalid_option"}
    return metric(server.http_url, "maskserve_requests_total", **labels)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


@pytest.fixture(scope="module")
def rle_masks(server: RunningServer, example: bytes) -> list[np.ndarray]:
    detections = post(server, example).json()["detections"]
    assert detections, "the shipped model should find shapes in its example image"
    return [mask_utils.decode(d["mask"]) > 0 for d in detections]


@pytest.mark.parametrize("tolerance", [None, 0.0, 2.0])
def test_rest_polygons_match_the_rle_masks(
    server: RunningServer, example: bytes, rle_masks: list[np.ndarray], tolerance: float | None
) -> None:
    params: dict[str, object] = {"mask_format": "polygon"}
    if tolerance is not None:
        params["polygon_tolerance"] = tolerance
    response = post(server, example, **params)
    assert response.status_code == 200, response.text
    detections = response.json()["detections"]
    assert len(detections) == len(rle_masks)
    for det, expected in zip(detections, rle_masks, strict=True):
        mask = det["mask"]
        assert mask["type"] == "polygon" and mask["size"] == list(expected.shape)
        parts = [(p["exterior"], p["holes"]) for p in mask["polygons"]]
        got = rasterise(*expected.shape, parts)
        if tolerance == 0.0:
            np.testing.assert_array_equal(got, expected)
        else:
            assert iou(got, expected) >= 0.95


def test_grpc_polygons_match_the_rle_masks(
    server: RunningServer, example: bytes, rle_masks: list[np.ndarray]
) -> None:
    options = pb.SegmentOptions(mask_format=pb.POLYGON)
    with grpc.insecure_channel(server.grpc_target) as channel:
        reply = pb_grpc.SegmentationStub(channel).Segment(
            pb.SegmentRequest(model=MODEL, image=example, options=options), timeout=60
        )
    assert len(reply.detections) == len(rle_masks)
    for det, expected in zip(reply.detections, rle_masks, strict=True):
        assert det.mask.WhichOneof("counts") == "polygons"
        assert (det.mask.height, det.mask.width) == expected.shape
        parts = [
            (list(p.exterior.coords), [list(h.coords) for h in p.holes])
            for p in det.mask.polygons.polygons
        ]
        assert iou(rasterise(*expected.shape, parts), expected) >= 0.95


@pytest.mark.parametrize("value", ["-1", "101", "nan", "inf", "wide"])
def test_rest_tolerance_out_of_range_is_400(
    server: RunningServer, example: bytes, value: str
) -> None:
    before = invalid_options(server)
    response = post(server, example, mask_format="polygon", polygon_tolerance=value)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_option" and "polygon_tolerance" in error["message"]
    assert invalid_options(server) == before + 1


@pytest.mark.parametrize("value", [-0.5, 1000.0, float("nan")])
def test_grpc_tolerance_out_of_range_is_invalid_argument(
    server: RunningServer, example: bytes, value: float
) -> None:
    options = pb.SegmentOptions(mask_format=pb.POLYGON, polygon_tolerance=value)
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = pb_grpc.SegmentationStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Segment(pb.SegmentRequest(model=MODEL, image=example, options=options), timeout=60)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "polygon_tolerance" in caught.value.details()


def test_openapi_documents_the_polygon_shape(server: RunningServer) -> None:
    spec = httpx.get(server.http_url + "/openapi.json", timeout=30).json()
    parameters = {
        p["name"] for p in spec["paths"]["/v1/models/{model}/segment"]["post"]["parameters"]
    }
    assert {"mask_format", "polygon_tolerance", "format"} <= parameters
    assert "PolygonMask" in spec["components"]["schemas"]


def test_clients_take_mask_format_polygon(
    server: RunningServer, example: bytes, rle_masks: list[np.ndarray]
) -> None:
    from maskserve_client import Client, GrpcClient

    with Client(server.http_url) as rest:
        over_rest = rest.segment(example, model=MODEL, mask_format="polygon", polygon_tolerance=0)
    grpc_client = GrpcClient(server.grpc_target)
    try:
        over_grpc = grpc_client.segment(example, model=MODEL, mask_format="polygon")
    finally:
        grpc_client.close()
    for result, exact in ((over_rest, True), (over_grpc, False)):
        assert len(result.detections) == len(rle_masks)
        for det, expected in zip(result.detections, rle_masks, strict=True):
            assert det.polygons is not None and det.rle is None
            if exact:  # the client's own fill of the exact rings is the RLE mask
                np.testing.assert_array_equal(det.mask(), expected)
            else:
                assert iou(det.mask(), expected) >= 0.95
