"""A Mask R-CNN model folder served by the real server (REST + gRPC on 127.0.0.1).

The folder is what ``train_maskrcnn.write_model`` writes (safetensors + model.toml with
the config as data and ``score_threshold = 0.5``), holding the slim network with seeded
random weights made confident. The server's answers must equal, pixel for pixel, the
in-process backend's detections encoded by ``encode_box_masks_with_areas``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import torch
from maskrcnn_helpers import confident, decode
from pycocotools import mask as coco_mask

from maskserve.api.gen import segment_pb2 as pb
from maskserve.api.gen import segment_pb2_grpc as pb_grpc
from maskserve.imageio import decode_image
from maskserve.masks import encode_box_masks_with_areas
from maskserve.models.maskrcnn.network import build_maskrcnn
from maskserve.models.registry import ModelSpec, build_backend
from maskserve.models.synthetic import SHAPE_CLASSES
from maskserve.models.training.train_maskrcnn import (
    SERVED_SCORE_THRESHOLD,
    shapes_maskrcnn_config,
    write_model,
)
from maskserve.workers import available_cores

pytestmark = pytest.mark.slow

MODEL = "maskrcnn_toy"


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository holding one Mask R-CNN folder. A mild boost and a sharpened
    class-1 row spread the scores across the served threshold (about 40 of 100 above)."""
    root = tmp_path_factory.mktemp("maskrcnn_repo")
    torch.manual_seed(0)
    model = confident(build_maskrcnn(shapes_maskrcnn_config()), boost=2.0)
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.weight[1] *= 50.0
    write_model(model, root / MODEL)
    return root


@pytest.fixture(scope="module")
def png(images: list[np.ndarray], api_harness: ModuleType) -> bytes:
    return api_harness.encode(images[0], "PNG")


@pytest.fixture(scope="module")
def expected(repository: Path, png: bytes) -> dict[str, Any]:
    """In-process inference on the decoded image, cut at the folder's score threshold.

    It runs with the intra-op threads the server gives its only CPU worker (all cores):
    reductions split over another number of threads round differently.
    """
    backend = build_backend(ModelSpec.from_folder(repository / MODEL), "cpu")
    previous = torch.get_num_threads()
    torch.set_num_threads(available_cores())
    try:
        (found,) = backend.infer([decode_image(png)], backend.info.max_detections)
    finally:
        torch.set_num_threads(previous)
    kept = found.select(found.scores > SERVED_SCORE_THRESHOLD)
    assert 0 < len(kept) < len(found), "the threshold should keep some detections, not all"
    encoded = encode_box_masks_with_areas(
        kept.box_masks, kept.boxes, kept.image_size, kept.mask_threshold
    )
    return {
        "class_ids": kept.class_ids.tolist(),
        "scores": kept.scores.numpy(),
        "boxes": kept.boxes.numpy(),
        "masks": decode(encoded.rles),
    }


@pytest.fixture(scope="module")
def server(repository: Path, api_harness: ModuleType) -> Iterator[Any]:
    api = api_harness
    with api.running_server(api.server_settings(repository, models=[MODEL])) as running:
        yield running


def test_rest_segment_equals_in_process(server: Any, png: bytes, expected: dict) -> None:
    response = httpx.post(
        f"{server.http_url}/v1/models/{MODEL}/segment",
        content=png,
        headers={"content-type": "image/png"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    got = response.json()["detections"]
    assert [d["class_id"] for d in got] == expected["class_ids"]
    assert [d["label"] for d in got] == [SHAPE_CLASSES[c] for c in expected["class_ids"]]
    np.testing.assert_allclose([d["score"] for d in got], expected["scores"], rtol=0, atol=1e-6)
    np.testing.assert_allclose([d["box"] for d in got], expected["boxes"], rtol=0, atol=1e-3)
    masks = np.stack([coco_mask.decode(d["mask"]) for d in got]).astype(bool)
    np.testing.assert_array_equal(masks, expected["masks"])


def test_model_endpoint_reports_the_family(server: Any) -> None:
    response = httpx.get(f"{server.http_url}/v1/models/{MODEL}", timeout=30)
    assert response.status_code == 200, response.text
    described = response.json()
    assert (described["name"], described["family"]) == (MODEL, "maskrcnn")
    assert described["class_names"] == list(SHAPE_CLASSES)
    assert described["score_threshold"] == SERVED_SCORE_THRESHOLD
    assert described["input_size"] == shapes_maskrcnn_config().max_size


def test_grpc_segment_equals_in_process(server: Any, png: bytes, expected: dict) -> None:
    with grpc.insecure_channel(server.grpc_target) as channel:
        reply = pb_grpc.SegmentationStub(channel).Segment(
            pb.SegmentRequest(model=MODEL, image=png), timeout=120
        )
    assert [d.class_id for d in reply.detections] == expected["class_ids"]
    assert [d.label for d in reply.detections] == [SHAPE_CLASSES[c] for c in expected["class_ids"]]
    masks = [
        coco_mask.decode(
            {"size": [d.mask.height, d.mask.width], "counts": d.mask.compressed}
        ).astype(bool)
        for d in reply.detections
    ]
    np.testing.assert_array_equal(np.stack(masks), expected["masks"])
