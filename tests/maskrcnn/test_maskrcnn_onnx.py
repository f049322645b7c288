"""Mask R-CNN → ONNX (batch-1 graph up to the 28×28 masks) and the onnxruntime backend.

The slim random network is exported once per module at 192/256 px; the parity tests run
on the ``images`` fixture (240×320, 300×200), other sizes than the traced 224×288.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from maskrcnn_helpers import decode, mask_ious
from safetensors.torch import save_file
from torchvision.models.detection import MaskRCNN
from torchvision.ops import box_iou

from maskserve.cli import main
from maskserve.masks import encode_box_masks_with_areas
from maskserve.models.maskrcnn.backend import MaskRcnnBackend
from maskserve.models.maskrcnn.config import MaskRcnnConfig, config_from_dict, config_to_dict
from maskserve.models.maskrcnn.export import ExportResult, export_maskrcnn
from maskserve.models.maskrcnn.network import build_maskrcnn
from maskserve.models.maskrcnn.onnx_backend import MaskRcnnOnnxBackend
from maskserve.models.onnxrt.session import OrtError
from maskserve.models.registry import ModelSpec, build_backend
from maskserve.models.tomlwrite import dumps
from maskserve.models.types import Detections


@pytest.fixture(scope="module")
def small_config(slim_config: MaskRcnnConfig) -> MaskRcnnConfig:
    return replace(slim_config, min_size=192, max_size=256)


@pytest.fixture(scope="module")
def small_model(slim_model: MaskRCNN, small_config: MaskRcnnConfig) -> MaskRCNN:
    """The slim random weights at 192/256 px, with label 3 competing with the boosted label 1.

    Label 3 gets the same bias boost and a 100× weight row, so its logit swings with the
    RoI features and wins on some detections: two classes appear (measured 19/11, 25/5).
    """
    model = build_maskrcnn(small_config)
    model.load_state_dict(slim_model.state_dict())
    with torch.no_grad():
        scores = model.roi_heads.box_predictor.cls_score
        scores.bias[3] += 6.0
        scores.weight[3] *= 100.0
    return model.eval()


@pytest.fixture(scope="module")
def exported(
    small_model: MaskRCNN, small_config: MaskRcnnConfig, tmp_path_factory: pytest.TempPathFactory
) -> ExportResult:
    return export_maskrcnn(small_model, small_config, tmp_path_factory.mktemp("mr") / "m.onnx")


def onnx_folder(root: Path, source: Path, table: str = "") -> Path:
    """A model folder serving ``source`` through onnxruntime, ``[maskrcnn]`` = ``table``."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, root / "model.onnx")
    (root / "model.toml").write_text(
        'family = "maskrcnn"\nbackend = "onnxruntime"\nweights = "model.onnx"\n'
        f"score_threshold = 0.2\n\n[maskrcnn]\n{table}"
    )
    return root


def matched(a: Detections, b: Detections) -> tuple[np.ndarray, np.ndarray]:
    """Greedy same-class IoU ≥ 0.5 pairs, in ``a``'s score order."""
    iou = box_iou(a.boxes, b.boxes)
    iou[a.class_ids[:, None] != b.class_ids[None, :]] = -1.0
    left, right = [], []
    for row in range(len(a)):
        best = int(iou[row].argmax()) if len(b) else -1
        if best >= 0 and iou[row, best] >= 0.5:
            left.append(row)
            right.append(best)
            iou[:, best] = -1.0
    return np.array(left, dtype=np.int64), np.array(right, dtype=np.int64)


def assert_same_detections(eager: Detections, onnx_found: Detections) -> None:
    assert len(eager) > 0 and len(onnx_found) == len(eager)
    assert onnx_found.image_size == eager.image_size
    left, right = matched(eager, onnx_found)
    assert len(left) == len(eager), f"only {len(left)} of {len(eager)} matched"
    e, o = eager.select(torch.from_numpy(left)), onnx_found.select(torch.from_numpy(right))
    torch.testing.assert_close(o.class_ids, e.class_ids, rtol=0, atol=0)
    assert float((o.boxes - e.boxes).abs().max()) <= 0.5
    assert float((o.scores - e.scores).abs().max()) <= 1e-3
    assert o.box_masks.shape[1:] == (28, 28) and o.mask_threshold == e.mask_threshold
    decoded = [
        decode(encode_box_masks_with_areas(d.box_masks, d.boxes, d.image_size).rles) for d in (e, o)
    ]
    assert decoded[0].any()
    assert float(mask_ious(*decoded).min()) >= 0.99


@pytest.mark.slow
def test_export_is_a_checked_batch1_graph(exported: ExportResult) -> None:
    onnx.checker.check_model(str(exported.path))
    graph = onnx.load(str(exported.path), load_external_data=False).graph
    (image,) = graph.input
    dims = [d.dim_value or d.dim_param for d in image.type.tensor_type.shape.dim]
    assert image.name == "image" and dims == [3, "height", "width"]
    assert [o.name for o in graph.output] == ["boxes", "labels", "scores", "masks"]
    assert exported.opset == 17 and exported.exporter == "torchscript"
    assert exported.detections > 0 and exported.unmatched == 0
    assert set(exported.max_abs_diff) == {"boxes", "scores", "masks"}
    assert exported.max_abs_diff["boxes"] < 0.05 and exported.max_abs_diff["scores"] < 1e-4


@pytest.mark.slow
def test_metadata_holds_the_config(exported: ExportResult, small_config: MaskRcnnConfig) -> None:
    meta = {p.key: p.value for p in onnx.load(str(exported.path)).metadata_props}
    assert meta["maskserve_family"] == "maskrcnn"
    assert json.loads(meta["class_names"]) == list(small_config.class_names)
    assert config_from_dict(json.loads(meta["config"])) == small_config


@pytest.mark.slow
def test_served_model_folder_matches_eager(
    exported: ExportResult,
    small_model: MaskRCNN,
    small_config: MaskRcnnConfig,
    images: list[np.ndarray],
    tmp_path: Path,
) -> None:
    backend = build_backend(ModelSpec.from_folder(onnx_folder(tmp_path / "mr", exported.path)))
    assert isinstance(backend, MaskRcnnOnnxBackend)
    assert backend.info.family == "maskrcnn" and backend.info.score_threshold == 0.2
    assert backend.info.extra["backend"] == "onnxruntime"
    assert backend.config == small_config
    eager = MaskRcnnBackend(small_model, small_config, "eager", torch.device("cpu"), torch.float32)
    served = backend.infer(images, max_detections=100)  # one call: the backend loops
    assert len(served) == len(images)
    classes = set()
    for image, found in zip(images, served, strict=True):
        want = eager.infer([image], max_detections=100)[0]
        assert_same_detections(want, found)
        classes |= set(want.class_ids.tolist())
    assert classes == {0, 2}


@pytest.mark.slow
def test_inference_settings_override_but_baked_ones_refuse(
    exported: ExportResult, images: list[np.ndarray], tmp_path: Path
) -> None:
    folder = onnx_folder(
        tmp_path / "a", exported.path, "mask_threshold = 0.7\ndetections_per_img = 4\n"
    )
    backend = build_backend(ModelSpec.from_folder(folder))
    found = backend.infer(images[:1], max_detections=100)[0]
    assert len(found) == 4 and found.mask_threshold == 0.7
    assert len(backend.infer(images[:1], max_detections=2)[0]) == 2
    for table, message in [
        ("box_score_thresh = 0.3\n", r"baked into the ONNX graph.*box_score_thresh = 0\.05"),
        ("detections_per_img = 31\n", "keeps at most 30"),
        ("fpn_channels = 8\n", "may only set"),
    ]:
        folder = onnx_folder(tmp_path / "b", exported.path, table)
        with pytest.raises(ValueError, match=message):
            build_backend(ModelSpec.from_folder(folder))


@pytest.mark.slow
def test_a_non_maskrcnn_onnx_file_is_a_clear_error(exported: ExportResult, tmp_path: Path) -> None:
    proto = onnx.load(str(exported.path))
    for prop in proto.metadata_props:
        if prop.key == "maskserve_family":
            prop.value = "yolact"
    onnx.save(proto, str(tmp_path / "yolact.onnx"))
    with pytest.raises(OrtError, match=r"not a maskserve Mask R-CNN export.*'yolact'"):
        MaskRcnnOnnxBackend(tmp_path / "yolact.onnx", "x")
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "plain.onnx"))
    folder = onnx_folder(tmp_path / "plain", tmp_path / "plain.onnx")
    with pytest.raises(
        OrtError, match=r"not a maskserve Mask R-CNN export \(maskserve_family=None"
    ):
        build_backend(ModelSpec.from_folder(folder))


def test_a_model_built_with_other_settings_is_refused(
    slim_model: MaskRCNN, small_config: MaskRcnnConfig, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="min_size: model 320 vs config 192"):
        export_maskrcnn(slim_model, small_config, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.slow
def test_no_detections_give_empty_results(
    small_config: MaskRcnnConfig, images: list[np.ndarray], tmp_path: Path
) -> None:
    config = replace(small_config, box_score_thresh=0.99)
    torch.manual_seed(1)
    model = build_maskrcnn(config).eval()  # random and unconfident: nothing scores 0.99
    result = export_maskrcnn(model, config, tmp_path / "none.onnx", verify=False)
    found = MaskRcnnOnnxBackend(result.path, "none").infer(images, max_detections=100)
    assert [len(d) for d in found] == [0, 0]
    assert tuple(found[0].box_masks.shape) == (0, 28, 28) and tuple(found[0].boxes.shape) == (0, 4)


def eager_repository(root: Path, model: MaskRCNN, config: MaskRcnnConfig) -> Path:
    """``root/mr_eager``: the weights as safetensors + a model.toml with the full config."""
    folder = root / "mr_eager"
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "w.safetensors")
    toml = {"family": "maskrcnn", "weights": "w.safetensors", "score_threshold": 0.25}
    (folder / "model.toml").write_text(dumps({**toml, "maskrcnn": config_to_dict(config)}))
    return root


@pytest.mark.slow
def test_export_command_writes_a_servable_model_folder(
    small_model: MaskRCNN,
    small_config: MaskRcnnConfig,
    images: list[np.ndarray],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo, folder = eager_repository(tmp_path / "repo", small_model, small_config), tmp_path / "out"
    argv = ["export", "--model", "mr_eager", "--model-repository", str(repo)]
    assert main([*argv, "--model-folder", str(folder)]) == 0
    printed = capsys.readouterr().out
    assert "onnx.checker passed" in printed and "torchscript exporter, opset 17" in printed
    diffs = {
        line.split()[0]: float(line.split()[1])
        for line in printed.splitlines()
        if line.startswith("  ")
    }
    assert set(diffs) == {"boxes", "scores", "masks"}
    assert diffs["boxes"] < 0.05 and diffs["scores"] < 1e-4 and diffs["masks"] < 1e-3
    toml = tomllib.loads((folder / "model.toml").read_text())
    assert toml["family"] == "maskrcnn" and toml["backend"] == "onnxruntime"
    assert toml["weights"] == "model.onnx" and toml["score_threshold"] == 0.25
    backend = build_backend(ModelSpec.from_folder(folder))
    assert isinstance(backend, MaskRcnnOnnxBackend) and backend.info.name == "out"
    eager = build_backend(ModelSpec.from_folder(repo / "mr_eager"))
    assert isinstance(eager, MaskRcnnBackend)
    assert_same_detections(eager.infer(images[1:], 100)[0], backend.infer(images[1:], 100)[0])
    assert main([*argv, "--out", str(tmp_path / "h.onnx"), "--fp16"]) == 2
    assert "float32 only" in capsys.readouterr().err
