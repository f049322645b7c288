"""The clients and the CLI against a real maskserve (REST + gRPC) on 127.0.0.1.

The server comes from the protocol tests' harness (``tests/api/api_harness.py``): the real
service with the shipped model, or random weights of the same layout when it is absent.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from maskserve_client import Client, GrpcClient, MaskserveClientError
from maskserve_client.cli import main
from PIL import Image
from pycocotools import mask as coco_mask

pytestmark = pytest.mark.slow

MODEL = "yolact_shapes"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, api_harness: ModuleType) -> Iterator[Any]:
    from maskserve.models.registry import ZOO_DIR

    root = tmp_path_factory.mktemp("client_repo")
    shipped = ZOO_DIR / MODEL
    if (shipped / "model.toml").is_file():
        shutil.copytree(shipped, root / MODEL)
    else:
        import torch

        from maskserve.models.training.train_yolact import shapes_config, write_model
        from maskserve.models.yolact.network import Yolact

        torch.manual_seed(0)
        write_model(Yolact(shapes_config()), root / MODEL)
    api = api_harness
    with api.running_server(api.server_settings(root)) as running:
        yield running


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    from maskserve.models.synthetic.generator import generate_sample

    return generate_sample(np.random.default_rng(7), 240, 320, max_objects=4).image


def test_rest_client_against_the_server(live: Any, pixels: np.ndarray) -> None:
    with Client(live.http_url, timeout=60) as client:
        assert client.ready() and client.healthy()
        (info,) = client.models()
        assert info == client.model(MODEL)
        assert info.name == MODEL and info.class_names and info.batching is not None
        result = client.segment(pixels, score_threshold=0.0, max_detections=5)
        with pytest.raises(MaskserveClientError) as caught:
            client.segment(pixels, model="no_such_model")
    assert (caught.value.status, caught.value.code) == (404, "model_not_found")
    assert (result.model, result.width, result.height) == (MODEL, 320, 240)
    assert len(result.detections) <= 5
    for detection in result.detections:
        assert detection.rle is not None
        reference = coco_mask.decode(detection.rle.to_json()).astype(bool)
        assert np.array_equal(detection.mask(), reference)


def test_grpc_masks_match_rest(live: Any, pixels: np.ndarray) -> None:
    with Client(live.http_url, timeout=60) as rest:
        expected = rest.segment(pixels, score_threshold=0.0)
    with GrpcClient(live.grpc_target, timeout=60) as client:
        (info,) = client.models()
        compressed = client.segment(pixels, score_threshold=0.0)
        runs = client.segment(pixels, score_threshold=0.0, mask_format="runs")
    assert info.name == MODEL
    for result in (compressed, runs):
        assert [d.class_id for d in result.detections] == [d.class_id for d in expected.detections]
        for ours, theirs in zip(result.detections, expected.detections, strict=True):
            assert np.array_equal(ours.mask(), theirs.mask())


def test_grpc_stream_in_order(live: Any, pixels: np.ndarray) -> None:
    frames = [(100 + i, np.ascontiguousarray(np.roll(pixels, 8 * i, axis=1))) for i in range(4)]
    with GrpcClient(live.grpc_target) as client:
        results = list(client.stream(frames, max_detections=3))
    assert [r.frame_id for r in results] == [100, 101, 102, 103]
    assert all(r.ok and r.result is not None and r.result.width == 320 for r in results)


def test_cli_segment_against_the_server(
    live: Any, pixels: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "scene.png"
    Image.fromarray(pixels).save(image)
    out = tmp_path / "out"
    assert main(["segment", str(image), "--out", str(out), "--url", live.http_url]) == 0
    written = json.loads((out / "scene.json").read_text())
    assert written["model"] == MODEL and written["image"] == {"width": 320, "height": 240}
    with Image.open(out / "scene.overlay.png") as overlay:
        assert overlay.size == (320, 240)
    assert "1/1 images segmented" in capsys.readouterr().out
