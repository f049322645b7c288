"""REST and gRPC masks equal, pixel for pixel, those of in-process inference on the same image."""

from __future__ import annotations

from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from api_harness import MODEL, RunningServer, needs_shipped_model
from pycocotools import mask as coco_mask

from maskserve.api.gen import segment_pb2 as pb
from maskserve.api.gen import segment_pb2_grpc as pb_grpc
from maskserve.imageio import decode_image
from maskserve.models.registry import ModelSpec, build_backend
from maskserve.options import SegmentOptions
from maskserve.result_json import result_json
from maskserve.results import build_result, select

pytestmark = needs_shipped_model


@pytest.fixture(scope="module")
def reference(repository: Path, png: bytes) -> tuple[list[np.ndarray], list[dict]]:
    """Masks and detections from the backend called directly, with the server's defaults."""
    backend = build_backend(ModelSpec.from_folder(repository / MODEL), "cpu")
    info = backend.info
    (found,) = backend.infer([decode_image(png)], max_detections=info.max_detections)
    options = SegmentOptions()
    kept = select(found, options, info.score_threshold, info.max_detections)
    result = result_json(build_result(MODEL, kept, options), include_timings=False)
    assert result["detections"], "the shipped model should detect shapes in the test scene"
    return [coco_mask.decode(d["mask"]) for d in result["detections"]], result["detections"]


def test_rest_masks_equal_in_process(server: RunningServer, png: bytes, reference) -> None:
    masks, detections = reference
    response = httpx.post(
        f"{server.http_url}/v1/models/{MODEL}/segment",
        content=png,
        headers={"content-type": "image/png"},
        timeout=60,
    )
    got = response.json()["detections"]
    assert [(d["class_id"], d["label"]) for d in got] == [
        (d["class_id"], d["label"]) for d in detections
    ]
    assert [d["box"] for d in got] == [d["box"] for d in detections]
    for det, expected in zip(got, masks, strict=True):
        np.testing.assert_array_equal(coco_mask.decode(det["mask"]), expected)


@pytest.mark.parametrize("mask_format", [pb.RLE_COMPRESSED, pb.RLE_RAW_RUNS])
def test_grpc_masks_equal_in_process(
    server: RunningServer, png: bytes, reference, mask_format: int
) -> None:
    masks, detections = reference
    with grpc.insecure_channel(server.grpc_target) as channel:
        reply = pb_grpc.SegmentationStub(channel).Segment(
            pb.SegmentRequest(
                model=MODEL, image=png, options=pb.SegmentOptions(mask_format=mask_format)
            ),
            timeout=60,
        )
    assert [d.class_id for d in reply.detections] == [d["class_id"] for d in detections]
    for det, expected in zip(reply.detections, masks, strict=True):
        size = [det.mask.height, det.mask.width]
        if mask_format == pb.RLE_RAW_RUNS:
            rle = coco_mask.frPyObjects({"size": size, "counts": list(det.mask.runs.counts)}, *size)
        else:
            rle = {"size": size, "counts": det.mask.compressed}
        np.testing.assert_array_equal(coco_mask.decode(rle), expected)
