"""Served parity: the shipped models and their ONNX exports, side by side in one server.

A model repository holds both shipped models (eager) and ``maskserve export
--model-folder`` of each (``backend = "onnxruntime"``); one real server (REST on
127.0.0.1) serves all four. For the same image, each ONNX model's answer must match its
eager twin's: the same detections (class ids, in order), boxes within 0.5 px, scores
within 1e-3, every mask IoU ≥ 0.99 (pycocotools decodes both).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import numpy as np
import pytest
from pycocotools import mask as coco_mask

from maskserve.cli import main
from maskserve.models.registry import ZOO_DIR

pytestmark = pytest.mark.slow

SHIPPED = ("yolact_shapes", "maskrcnn_shapes")
EXAMPLE = ZOO_DIR / "yolact_shapes" / "example.png"


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("onnx_served")
    for name in SHIPPED:
        shutil.copytree(ZOO_DIR / name, root / name)
        exported = root / f"{name}_onnx"
        assert main(["export", "--model", name, "--model-folder", str(exported)]) == 0
    return root


@pytest.fixture(scope="module")
def server(repository: Path, api_harness: ModuleType) -> Iterator[Any]:
    models = [*SHIPPED, *(f"{name}_onnx" for name in SHIPPED)]
    settings = api_harness.server_settings(repository, models=models)
    with api_harness.running_server(settings) as running:
        yield running


def segment(server: Any, model: str) -> list[dict[str, Any]]:
    response = httpx.post(
        f"{server.http_url}/v1/models/{model}/segment",
        content=EXAMPLE.read_bytes(),
        headers={"content-type": "image/png"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    return response.json()["detections"]


def mask_iou(a: dict[str, Any], b: dict[str, Any]) -> float:
    first, second = coco_mask.decode(a["mask"]) > 0, coco_mask.decode(b["mask"]) > 0
    union = np.logical_or(first, second).sum()
    return float(np.logical_and(first, second).sum() / union) if union else 1.0


@pytest.mark.parametrize("name", SHIPPED)
def test_onnx_answers_match_eager(server: Any, name: str) -> None:
    eager, onnx = segment(server, name), segment(server, f"{name}_onnx")
    assert len(eager) >= 3
    assert [d["class_id"] for d in onnx] == [d["class_id"] for d in eager]
    np.testing.assert_allclose([d["box"] for d in onnx], [d["box"] for d in eager], atol=0.5)
    np.testing.assert_allclose([d["score"] for d in onnx], [d["score"] for d in eager], atol=1e-3)
    assert min(mask_iou(a, b) for a, b in zip(onnx, eager, strict=True)) >= 0.99


def test_the_onnx_models_report_their_backend(server: Any) -> None:
    for name in SHIPPED:
        described = httpx.get(f"{server.http_url}/v1/models/{name}_onnx", timeout=30).json()
        assert described["family"] == name.split("_")[0]
        assert described["extra"]["backend"] == "onnxruntime"
