"""A YOLACT++-style config (deformable convs + mask re-scoring) through dynamo opset 19."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch
from onnx_helpers import random_model, sample_images, tiny_config

from maskserve.models.registry import ModelSpec
from maskserve.models.yolact.backend import YolactBackend
from maskserve.models.yolact.export import export_yolact, maskiou_path
from maskserve.models.yolact.onnx_backend import YolactOnnxBackend


@pytest.fixture(scope="module")
def plus_export(shipped_spec: ModelSpec, tmp_path_factory: pytest.TempPathFactory):
    config = tiny_config(shipped_spec, deformable=True, maskiou=True, size=256)
    model = random_model(config, seed=3)
    path = tmp_path_factory.mktemp("plus") / "plus.onnx"
    return model, export_yolact(model, path)


def test_deformable_config_exports_with_dynamo_at_opset_19(plus_export) -> None:
    _, result = plus_export
    assert (result.exporter, result.opset) == ("dynamo", 19)
    proto = onnx.load(str(result.path))
    onnx.checker.check_model(proto)
    ops = {node.op_type for node in proto.graph.node}
    assert "DeformConv" in ops
    assert result.maskiou_path == maskiou_path(result.path)
    assert result.maskiou_path.is_file()


def test_deformable_onnx_outputs_match_eager(plus_export) -> None:
    _, result = plus_export
    assert {"loc", "conf", "coeffs", "proto", "priors", "maskiou"} == set(result.max_abs_diff)
    assert max(result.max_abs_diff.values()) < 1e-4, result.max_abs_diff


def test_plus_backend_rescores_masks_like_eager(plus_export) -> None:
    model, result = plus_export
    images = sample_images(11, [(200, 260), (256, 256)])
    eager = YolactBackend(model, "eager", torch.device("cpu"), torch.float32)
    onnx_backend = YolactOnnxBackend(result.path, "onnx", "cpu")
    want = eager.infer(images, max_detections=20)
    got = onnx_backend.infer(images, max_detections=20)
    for w, g in zip(want, got, strict=True):
        assert len(w) == len(g) > 0
        assert torch.equal(w.class_ids, g.class_ids)
        assert torch.allclose(w.scores, g.scores, atol=1e-4)
        assert w.mask_scores is not None and g.mask_scores is not None
        assert torch.allclose(w.mask_scores, g.mask_scores, atol=1e-4)


def test_a_missing_maskiou_graph_is_a_clear_error(plus_export, tmp_path: Path) -> None:
    from maskserve.models.onnxrt.session import OrtError

    _, result = plus_export
    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(result.path.read_bytes())
    with pytest.raises(OrtError, match=r"lonely\.maskiou\.onnx is missing"):
        YolactOnnxBackend(lonely, "lonely", "cpu")
