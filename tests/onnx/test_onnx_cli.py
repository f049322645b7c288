"""``maskserve export`` end to end, the model folder it writes, and clear errors."""

from __future__ import annotations

import tomllib
from pathlib import Path

import onnxruntime as ort
import pytest
import torch
from onnx_helpers import example_image, random_model, tiny_config

from maskserve.cli import main
from maskserve.models.onnxrt.session import OrtError, OrtRunner
from maskserve.models.registry import ModelSpec, build_backend
from maskserve.models.yolact.export import ExportResult
from maskserve.models.yolact.onnx_backend import YolactOnnxBackend


def test_export_command_writes_a_servable_model_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, folder = tmp_path / "shapes.onnx", tmp_path / "repo" / "shapes_onnx"
    argv = ["export", "--model", "yolact_shapes", "--out", str(out), "--model-folder", str(folder)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "onnx.checker passed" in printed
    diffs = {
        line.split()[0]: float(line.split()[1])
        for line in printed.splitlines()
        if line.startswith("  ")
    }
    assert set(diffs) == {"loc", "conf", "coeffs", "proto", "priors"}
    assert max(diffs.values()) < 1e-4
    assert out.is_file() and (folder / "model.onnx").is_file()
    toml = tomllib.loads((folder / "model.toml").read_text())
    assert toml["family"] == "yolact" and toml["backend"] == "onnxruntime"
    assert toml["weights"] == "model.onnx" and toml["score_threshold"] == 0.3
    backend = build_backend(ModelSpec.from_folder(folder), "cpu")
    assert isinstance(backend, YolactOnnxBackend)
    assert backend.info.name == "shapes_onnx"
    assert backend.info.extra["backend"] == "onnxruntime"
    found = backend.infer([example_image()], max_detections=50)[0]
    assert int((found.scores > 0.3).sum()) >= 3


def test_export_command_needs_an_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--model", "yolact_shapes"]) == 2
    assert "--out" in capsys.readouterr().err


def test_export_command_reports_missing_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.safetensors"
    assert main(["export", "--weights", str(missing), "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert "nope.safetensors" in err and "does not exist" in err


def test_forced_low_opset_for_a_deformable_model_fails_clearly(tmp_path: Path) -> None:
    from maskserve.models.registry import find_model
    from maskserve.models.yolact.export import export_yolact

    config = tiny_config(find_model("yolact_shapes"), deformable=True, maskiou=False, size=128)
    with pytest.raises(ValueError, match="deformable"):
        export_yolact(random_model(config), tmp_path / "plus.onnx", opset=17)
    assert not (tmp_path / "plus.onnx").exists()


def test_a_model_folder_without_its_onnx_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "model.toml").write_text(
        'family = "yolact"\nbackend = "onnxruntime"\nweights = "model.onnx"\n\n[yolact]\n'
    )
    with pytest.raises(OrtError, match=r"model\.onnx does not exist"):
        build_backend(ModelSpec.from_folder(tmp_path), "cpu")


def test_architecture_keys_are_refused_for_an_onnx_model(
    shipped_export: ExportResult, tmp_path: Path
) -> None:
    (tmp_path / "model.onnx").write_bytes(shipped_export.path.read_bytes())
    (tmp_path / "model.toml").write_text(
        'family = "yolact"\nbackend = "onnxruntime"\nweights = "model.onnx"\n\n'
        "[yolact]\nnms_thresh = 0.4\nfpn_channels = 64\n"
    )
    with pytest.raises(ValueError, match="fpn_channels"):
        build_backend(ModelSpec.from_folder(tmp_path), "cpu")
    (tmp_path / "model.toml").write_text(
        'family = "yolact"\nbackend = "onnxruntime"\nweights = "model.onnx"\n\n'
        "[yolact]\nnms_thresh = 0.4\n"
    )
    backend = build_backend(ModelSpec.from_folder(tmp_path), "cpu")
    assert backend.config.nms_thresh == 0.4


def test_a_foreign_onnx_file_is_a_clear_error(shipped_export: ExportResult, tmp_path: Path) -> None:
    import onnx

    proto = onnx.load(str(shipped_export.path))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "plain.onnx"))
    with pytest.raises(OrtError, match="not a maskserve YOLACT export"):
        YolactOnnxBackend(tmp_path / "plain.onnx", "plain", "cpu")


@pytest.mark.skipif(
    "CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA provider present"
)
def test_cuda_without_the_cuda_provider_is_a_clear_error(shipped_export: ExportResult) -> None:
    with pytest.raises(OrtError, match="CUDA provider"):
        OrtRunner(shipped_export.path, torch.device("cuda:0"))
    with pytest.raises(OrtError, match="CUDA provider"):
        YolactOnnxBackend(shipped_export.path, "shapes", "cuda")
