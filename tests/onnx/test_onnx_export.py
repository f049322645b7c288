"""Exporting YOLACT heads: checker, metadata, dynamic batch, exporter choice, fp16."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch
from onnx_helpers import random_model, sample_images, tiny_config

from maskserve.models.onnxrt.session import OrtRunner
from maskserve.models.registry import ModelSpec
from maskserve.models.yolact.config_io import config_from_dict
from maskserve.models.yolact.export import (
    INPUT_NAME,
    OUTPUT_NAMES,
    ExportResult,
    choose_exporter,
    export_yolact,
)
from maskserve.models.yolact.onnx_backend import YolactOnnxBackend

EAGER_TOLERANCE = 1e-4


def test_shipped_export_passes_the_checker_and_carries_its_config(
    shipped_export: ExportResult, shipped_spec: ModelSpec
) -> None:
    onnx.checker.check_model(str(shipped_export.path))
    proto = onnx.load(str(shipped_export.path))
    meta = {p.key: p.value for p in proto.metadata_props}
    config = config_from_dict(shipped_spec.table)
    assert meta["maskserve_family"] == "yolact"
    assert json.loads(meta["class_names"]) == list(config.class_names)
    assert meta["input_size"] == "320"
    assert config_from_dict(json.loads(meta["config"])) == config
    assert meta["producer"].startswith("maskserve")
    assert (shipped_export.exporter, shipped_export.opset) == ("torchscript", 17)
    assert proto.opset_import[0].version == 17
    assert [o.name for o in proto.graph.output] == list(OUTPUT_NAMES)


def test_shipped_export_matches_eager(shipped_export: ExportResult) -> None:
    diffs = shipped_export.max_abs_diff
    assert set(diffs) == set(OUTPUT_NAMES)
    assert diffs["priors"] == 0.0
    assert max(diffs.values()) < EAGER_TOLERANCE, diffs


@pytest.mark.parametrize("batch", [1, 3])
def test_the_batch_axis_is_dynamic(shipped_export: ExportResult, batch: int) -> None:
    runner = OrtRunner(shipped_export.path, "cpu")
    images = torch.randn(batch, 3, 320, 320, generator=torch.Generator().manual_seed(batch))
    out = runner.run({INPUT_NAME: images})
    priors = out["priors"]
    num_priors = priors.shape[0]
    assert priors.shape == (num_priors, 4)
    assert out["loc"].shape == (batch, num_priors, 4)
    assert out["conf"].shape == (batch, num_priors, 9)
    assert out["coeffs"].shape == (batch, num_priors, 32)
    assert out["proto"].shape == (batch, 80, 80, 32)
    assert all(t.dtype == torch.float32 for t in out.values())
    sums = out["conf"].sum(dim=-1)  # softmax runs inside the graph
    assert torch.allclose(sums, torch.ones_like(sums), atol=1e-5)


def test_exporter_choice_per_config(shipped_spec: ModelSpec) -> None:
    plain = tiny_config(shipped_spec, deformable=False, maskiou=False, size=128)
    plus = tiny_config(shipped_spec, deformable=True, maskiou=False, size=128)
    assert choose_exporter(plain) == (False, 17)
    assert choose_exporter(plain, 18) == (False, 18)
    assert choose_exporter(plus) == (True, 19)
    assert choose_exporter(plus, 20) == (True, 20)
    with pytest.raises(ValueError, match="opset 19"):
        choose_exporter(plus, 17)


def test_fp16_export_has_a_half_input_and_float_outputs(
    shipped_spec: ModelSpec, tmp_path: Path
) -> None:
    model = random_model(tiny_config(shipped_spec, deformable=False, maskiou=False, size=128))
    result = export_yolact(model, tmp_path / "half.onnx", fp16=True)
    assert result.dtype == "float16"
    assert next(model.parameters()).dtype == torch.float32  # the caller's model is untouched
    proto = onnx.load(str(result.path))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert all(o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for o in proto.graph.output)
    assert max(result.max_abs_diff.values()) < 5e-2, result.max_abs_diff
    backend = YolactOnnxBackend(result.path, "half", "cpu")
    assert backend.info.dtype == "float16"
    found = backend.infer(sample_images(3, [(100, 140)]), max_detections=10)
    assert len(found) == 1
    assert found[0].lowres_masks.dtype == torch.float32
