"""The Ultralytics-made fixtures served by a real server: ``/v1/models`` and ``/segment``.

``GET /v1/models/{m}`` reports only settings the model applies: an ``nms=True`` export
fixes its IoU inside the graph, so no ``iou`` is shown for it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import httpx
import pytest
from ultralytics_parity import FIXTURES, parity_images

MODELS = {"yolo_dense": "yolov8-seg.onnx", "yolo_nms": "yolov8-seg-nms.onnx"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, api_harness: ModuleType) -> Iterator[Any]:
    repository = tmp_path_factory.mktemp("yolo_repository")
    for name, file in MODELS.items():
        folder = repository / name
        folder.mkdir()
        shutil.copyfile(FIXTURES / file, folder / "model.onnx")
        (folder / "model.toml").write_text(
            'family = "yoloseg"\nweights = "model.onnx"\n\n[yoloseg]\nconf = 0.05\niou = 0.7\n'
        )
    settings = api_harness.server_settings(repository, models=list(MODELS))
    with api_harness.running_server(settings) as running:
        yield running


def test_v1_models_reports_iou_only_where_it_is_applied(server: Any) -> None:
    with httpx.Client(base_url=server.http_url, timeout=60) as client:
        dense = client.get("/v1/models/yolo_dense").json()
        nms = client.get("/v1/models/yolo_nms").json()
    assert dense["extra"]["layout"] == "dense"
    assert dense["extra"]["iou"] == "0.7"
    assert nms["extra"]["layout"] == "end2end"
    assert "iou" not in nms["extra"]
    assert nms["class_names"] == ["shape"]


def test_both_exports_segment_the_same_shapes(server: Any, api_harness: ModuleType) -> None:
    image = api_harness.encode(parity_images(1)[0], "png")
    answers = {}
    with httpx.Client(base_url=server.http_url, timeout=60) as client:
        for name in MODELS:
            reply = client.post(
                f"/v1/models/{name}/segment", content=image, headers={"Content-Type": "image/png"}
            )
            assert reply.status_code == 200, reply.text
            answers[name] = reply.json()
    dense, nms = (answers[name] for name in MODELS)
    assert dense["detections"], "the fixture should find shapes"
    assert len(dense["detections"]) == len(nms["detections"])
