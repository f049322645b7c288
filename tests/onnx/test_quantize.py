"""int8 export: calibration on recorded feeds, QDQ convolutions, detections that agree."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx_helpers import example_image
from torchvision.ops import box_iou

from maskserve.cli import main
from maskserve.models.onnxrt.quantize import PRECISION_KEY, quantize_int8, record_feeds
from maskserve.models.registry import ModelSpec, build_backend
from maskserve.models.yolact.preprocess import preprocess_images


@pytest.fixture(scope="module")
def float_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("float") / "shapes_onnx"
    assert main(["export", "--model", "yolact_shapes", "--model-folder", str(folder)]) == 0
    return folder


def test_recorded_feeds_are_what_the_graph_is_given(float_folder: Path) -> None:
    backend = build_backend(ModelSpec.from_folder(float_folder), "cpu")
    image = example_image()
    with torch.inference_mode():
        feeds = record_feeds(backend, [image, image[::2, ::2].copy()])
        expected = preprocess_images([image], backend.config, backend.device).numpy()
    assert len(feeds) == 2 and backend.runner.recording is None
    (name,) = feeds[0]
    np.testing.assert_array_equal(feeds[0][name], expected)


def test_quantize_needs_calibration_input(float_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one"):
        quantize_int8(float_folder / "model.onnx", tmp_path / "q.onnx", [])


@pytest.mark.slow
def test_int8_export_quantises_every_conv_and_still_finds_the_objects(
    float_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "shapes_int8"
    argv = [
        "export",
        "--model",
        "yolact_shapes",
        "--model-folder",
        str(folder),
        "--int8",
        "--calibration-images",
        "8",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    share = re.search(r"int8 vs float: ([\d.]+)% of (\d+) detections agree", printed)
    assert share is not None and int(share.group(2)) > 10
    assert float(share.group(1)) >= 90.0
    graph = onnx.load(str(folder / "model.onnx"))
    onnx.checker.check_model(graph)
    convs = [n for n in graph.graph.node if n.op_type == "Conv"]
    dequantized = {o for n in graph.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    assert convs and all(n.input[1] in dequantized for n in convs)
    meta = {p.key: p.value for p in graph.metadata_props}
    assert meta[PRECISION_KEY] == "int8" and meta["maskserve_family"] == "yolact"
    ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    # the int8 folder serves like the float one and finds the same objects on the example
    int8 = build_backend(ModelSpec.from_folder(folder), "cpu")
    floats = build_backend(ModelSpec.from_folder(float_folder), "cpu")
    assert int8.info.extra["precision"] == "int8" and floats.info.extra["precision"] == "float"
    with torch.inference_mode():
        want = floats.infer([example_image()], 50)[0]
        got = int8.infer([example_image()], 50)[0]
    confident = want.scores > 0.5
    assert int(confident.sum()) >= 3
    ious = box_iou(want.boxes[confident], got.boxes[got.scores > 0.3])
    assert bool((ious.max(dim=1).values > 0.8).all())
