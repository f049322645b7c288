"""Ultralytics' own Triton client predicts through maskserve.

``YOLO("http://host:port/<model>", task="segment")`` (and ``grpc://``) is Ultralytics'
``TritonRemoteModel`` path: it reads the model's config (input datatypes, output names,
``parameters.metadata``), sends the letterboxed tensor and post-processes the raw outputs
itself. Served by maskserve as the ``raw = true`` twin of an Ultralytics-made export, its
predictions must equal ``YOLO(model.onnx)`` run locally: same boxes, scores, classes and
masks.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from ultralytics_parity import FIXTURES, import_ultralytics, parity_images

try:
    ULTRALYTICS = import_ultralytics()
except ImportError:  # pragma: no cover - depends on the environment
    pytest.skip(
        "ultralytics is not installed (test-only extra: pip install -e '.[yolo-test]')",
        allow_module_level=True,
    )

FIXTURE = "yolov8-seg.onnx"
CONF = 0.05


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, api_harness: ModuleType) -> Iterator[Any]:
    root = tmp_path_factory.mktemp("triton_repository")
    (root / "yolo").mkdir()
    shutil.copyfile(FIXTURES / FIXTURE, root / "yolo" / "model.onnx")
    (root / "yolo" / "model.toml").write_text(
        'family = "yoloseg"\nweights = "model.onnx"\nraw = true\n\n[yoloseg]\n'
    )
    with api_harness.running_server(api_harness.server_settings(root, models=["yolo"])) as s:
        yield s


@pytest.mark.parametrize("scheme", ["http", "grpc"])
def test_ultralytics_triton_client_predicts_like_the_local_file(server: Any, scheme: str) -> None:
    target = server.http_url.removeprefix("http://") if scheme == "http" else server.grpc_target
    remote = ULTRALYTICS.YOLO(f"{scheme}://{target}/yolo_raw", task="segment")
    local = ULTRALYTICS.YOLO(str(FIXTURES / FIXTURE), task="segment")
    found = 0
    for image in parity_images(3):
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        ours = remote.predict(bgr, conf=CONF, verbose=False)[0]
        theirs = local.predict(bgr, conf=CONF, verbose=False)[0]
        assert ours.names == theirs.names == {0: "shape"}
        np.testing.assert_array_equal(ours.boxes.xyxy.numpy(), theirs.boxes.xyxy.numpy())
        np.testing.assert_array_equal(ours.boxes.conf.numpy(), theirs.boxes.conf.numpy())
        np.testing.assert_array_equal(ours.boxes.cls.numpy(), theirs.boxes.cls.numpy())
        if theirs.masks is not None:
            np.testing.assert_array_equal(ours.masks.data.numpy(), theirs.masks.data.numpy())
        found += len(theirs.boxes)
    assert found > 0, "the fixture should find shapes at this confidence"
