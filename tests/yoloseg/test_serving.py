"""End to end: fake Ultralytics exports → YolosegBackend → the server's RLE encoder.

Checks boxes (within 1 px), classes, scores, and the decoded RLE masks against the ideal
region (IoU ≥ 0.95) and against an independent reimplementation of Ultralytics'
``process_mask_native`` (IoU ≥ 0.98).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_utils
from yoloseg_fakes import (
    IMGSZ,
    NAMES,
    NUM_MASKS,
    FakeYoloSeg,
    Scene,
    encode_scene,
    expected_mask,
    export,
    ultralytics_metadata,
)

from maskserve.masks import encode_detections
from maskserve.models.registry import ModelSpec, build_backend
from maskserve.models.types import Detections
from maskserve.models.yoloseg.backend import YolosegBackend
from maskserve.models.yoloseg.metadata import YolosegMetadataError
from maskserve.options import SegmentOptions
from maskserve.results import build_result


def reference_native_masks(scene: Scene) -> list[np.ndarray]:
    """Ultralytics' ``process_mask_native`` for the scene's true boxes, written from the spec.

    Logits = coeffs @ protos, upsampled ×4 to the input size (so the padding is whole
    pixels), ``scale_masks`` (top/left = round(pad − 0.1) from the unrounded gain, content
    = round(original × gain), bilinear resize to the original), ``> 0``, then
    ``crop_mask`` (x1 ≤ col < x2, y1 ≤ row < y2).
    """
    out0, protos = encode_scene(scene)
    h0, w0 = scene.image_hw
    gain = min(IMGSZ / h0, IMGSZ / w0)
    pad_w, pad_h = (IMGSZ - w0 * gain) / 2, (IMGSZ - h0 * gain) / 2
    top, left = round(pad_h - 0.1), round(pad_w - 0.1)
    bottom, right = top + round(h0 * gain), left + round(w0 * gain)
    masks = []
    for i in scene.expected:
        anchor = (i + 7) * 37
        coeffs = out0[4 + len(NAMES) :, anchor]
        logits = (coeffs @ protos.reshape(NUM_MASKS, -1)).reshape(1, 1, *protos.shape[1:])
        full = F.interpolate(logits, (IMGSZ, IMGSZ), mode="bilinear", align_corners=False)
        full = F.interpolate(
            full[..., top:bottom, left:right], (h0, w0), mode="bilinear", align_corners=False
        )[0, 0]
        x1, y1, x2, y2 = scene.objects[i].box
        cols, rows = torch.arange(w0)[None, :], torch.arange(h0)[:, None]
        crop = (cols >= x1) & (cols < x2) & (rows >= y1) & (rows < y2)
        masks.append(((full > 0) & crop).numpy())
    return masks


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def decoded(rles: list[dict]) -> list[np.ndarray]:
    return [mask_utils.decode({**r, "counts": r["counts"].encode()}).astype(bool) for r in rles]


def check_detections(found: Detections, scene: Scene) -> dict[str, list[float]]:
    """Assert boxes/classes/scores and masks; return the IoUs measured."""
    objects = [scene.objects[i] for i in scene.expected]
    assert len(found) == len(objects)
    assert found.image_size == scene.image_hw
    assert found.class_names == tuple(NAMES.values())
    assert found.class_ids.tolist() == [o.class_id for o in objects]
    assert found.scores.tolist() == pytest.approx([o.score for o in objects], abs=1e-6)
    assert torch.all(found.scores[:-1] >= found.scores[1:])
    assert found.boxes.dtype == torch.float32
    expected_boxes = torch.tensor([o.box for o in objects], dtype=torch.float32)
    torch.testing.assert_close(found.boxes, expected_boxes, atol=1.0, rtol=0)
    result = build_result("fake", found, SegmentOptions())
    rles = [d.mask.to_coco() for d in result.detections]
    assert rles == encode_detections(found).rles
    ideal, reference = [], []
    for mask, obj, ref in zip(decoded(rles), objects, reference_native_masks(scene), strict=True):
        assert mask.shape == scene.image_hw
        ideal.append(iou(mask, expected_mask(scene, obj)))
        reference.append(iou(mask, ref))
    assert min(ideal) >= 0.95, ideal
    assert min(reference) >= 0.98, reference
    return {"ideal": ideal, "reference": reference}


def scene_images(scenes: list[Scene]) -> list[np.ndarray]:
    return [scene.image(k) for k, scene in enumerate(scenes)]


def test_dynamic_batch_serves_a_batch_in_one_call(
    dynamic_onnx: Path, scenes: list[Scene], capsys: pytest.CaptureFixture[str]
) -> None:
    backend = YolosegBackend(dynamic_onnx, "fake")
    assert backend.dynamic_batch and backend.layout == "dense"
    assert backend.info.family == "yoloseg" and backend.info.input_size == IMGSZ
    assert backend.info.class_names == tuple(NAMES.values())
    found = backend.infer(scene_images(scenes), max_detections=100)
    ious = [check_detections(f, s) for f, s in zip(found, scenes, strict=True)]
    ideal = [v for d in ious for v in d["ideal"]]
    reference = [v for d in ious for v in d["reference"]]
    with capsys.disabled():
        print(
            f"\nyoloseg mask IoU vs ideal: min {min(ideal):.4f} mean {np.mean(ideal):.4f}; "
            f"vs Ultralytics-style reference: min {min(reference):.4f} "
            f"mean {np.mean(reference):.4f}"
        )


def test_static_batch_runs_image_by_image_with_the_same_results(
    static_onnx: Path, dynamic_onnx: Path, scenes: list[Scene]
) -> None:
    static = YolosegBackend(static_onnx)
    assert not static.dynamic_batch
    images = scene_images(scenes)
    one_by_one = static.infer(images, max_detections=100)
    batched = YolosegBackend(dynamic_onnx).infer(images, max_detections=100)
    for a, b, scene in zip(one_by_one, batched, scenes, strict=True):
        check_detections(a, scene)
        torch.testing.assert_close(a.lowres_masks, b.lowres_masks)
        assert torch.equal(a.proto_windows, b.proto_windows)


def write_folder(root: Path, onnx_path: Path, table: str = "") -> Path:
    folder = root / "fake_yoloseg"
    folder.mkdir(exist_ok=True)
    shutil.copy(onnx_path, folder / "model.onnx")
    (folder / "model.toml").write_text(
        f'family = "yoloseg"\nweights = "model.onnx"\n\n[yoloseg]\n{table}'
    )
    return folder


def test_model_folder_builds_through_the_registry_and_applies_overrides(
    tmp_path: Path, dynamic_onnx: Path, scenes: list[Scene]
) -> None:
    spec = ModelSpec.from_folder(write_folder(tmp_path, dynamic_onnx))
    backend = build_backend(spec, "cpu")
    assert isinstance(backend, YolosegBackend) and backend.info.name == "fake_yoloseg"
    check_detections(backend.infer(scene_images(scenes)[:1], max_detections=100)[0], scenes[0])

    table = 'conf = 0.75\nmax_det = 1\nclass_names = ["a", "b", "c"]\n'
    spec = ModelSpec.from_folder(write_folder(tmp_path, dynamic_onnx, table))
    found = build_backend(spec, "cpu").infer(scene_images(scenes), max_detections=100)
    assert [f.scores.tolist() for f in found] == [[pytest.approx(0.9)], [pytest.approx(0.95)]]
    assert found[0].class_names == ("a", "b", "c")


def test_server_max_detections_caps_the_model_limit(
    dynamic_onnx: Path, scenes: list[Scene]
) -> None:
    found = YolosegBackend(dynamic_onnx).infer(scene_images(scenes), max_detections=2)
    assert [len(f) for f in found] == [2, 2]
    assert found[0].scores.tolist() == pytest.approx([0.9, 0.8])


def test_end2end_layout_gives_the_same_detections(
    onnx_dir: Path, scenes: list[Scene], dynamic_onnx: Path
) -> None:
    path = export(
        FakeYoloSeg(scenes, end2end=True),
        onnx_dir / "e2e.onnx",
        dynamic_batch=True,
        metadata=ultralytics_metadata(end2end="True"),
    )
    backend = YolosegBackend(path, overrides={"iou": 0.5})
    assert backend.layout == "end2end"
    # the IoU is fixed inside the graph: /v1/models must not report one
    assert "iou" not in backend.info.extra
    assert backend.info.extra["conf"] == "0.25"
    assert YolosegBackend(dynamic_onnx).info.extra["iou"] == "0.7"
    found = backend.infer(scene_images(scenes), max_detections=100)
    for f, scene in zip(found, scenes, strict=True):
        check_detections(f, scene)


def test_non_segment_task_is_refused_with_a_clear_error(
    tmp_path: Path, scenes: list[Scene]
) -> None:
    path = export(
        FakeYoloSeg(scenes[:1]),
        tmp_path / "detect.onnx",
        dynamic_batch=False,
        metadata=ultralytics_metadata(task="detect"),
    )
    with pytest.raises(YolosegMetadataError, match=r"task is 'detect'.*only task='segment'"):
        YolosegBackend(path)


def test_empty_image_list_and_no_detections(dynamic_onnx: Path) -> None:
    backend = YolosegBackend(dynamic_onnx)
    assert backend.infer([], max_detections=10) == []
    blank = np.full((50, 70, 3), 200, dtype=np.uint8)  # matches no scene: all outputs 0
    (found,) = backend.infer([blank], max_detections=10)
    assert len(found) == 0 and found.image_size == (50, 70)
    assert encode_detections(found).rles == []
