"""``maskserve export --int8``: quantise a fresh float export and say what it changed.

The float graph is written by the family's exporter as usual; this module serves it from
a temporary model folder to record calibration inputs (models/onnxrt/quantize.py),
replaces the file with its int8 version, and compares both graphs' detections on images
that the calibration did not see.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision.ops import box_iou

from maskserve.export import ExportReport, write_model_folder
from maskserve.models.base import Backend
from maskserve.models.onnxrt.quantize import (
    CALIBRATION_SEED,
    QuantizeReport,
    quantize_int8,
    record_feeds,
    synthetic_images,
)
from maskserve.models.registry import ModelSpec, build_backend
from maskserve.progress import track

CHECK_SEED = CALIBRATION_SEED + 1


@dataclass
class Int8Report:
    quantize: QuantizeReport
    checked_detections: int  # float-graph detections at the model's score threshold
    agreeing: int  # of those, found by the int8 graph: same class, box IoU >= 0.5

    def lines(self) -> list[str]:
        q = self.quantize
        share = self.agreeing / self.checked_detections if self.checked_detections else 1.0
        return [
            f"int8: {q.quantized_convs} of {q.quantized_convs + q.float_convs} convolutions "
            f"quantised, calibrated on {q.calibration_feeds} synthetic images",
            f"int8 vs float: {share:.1%} of {self.checked_detections} detections agree "
            "(same class, box IoU >= 0.5) on images the calibration did not see",
        ]


def _load(folder: Path) -> Backend:
    return build_backend(ModelSpec.from_folder(folder), "cpu")


def agreement(float_backend: Backend, int8_backend: Backend, count: int) -> tuple[int, int]:
    """(float detections above the score threshold, how many the int8 graph also finds)."""
    threshold = float_backend.info.score_threshold
    checked = agreeing = 0
    for image in track(synthetic_images(count, CHECK_SEED), count, "export: check int8"):
        want = float_backend.infer([image], max_detections=100)[0]
        got = int8_backend.infer([image], max_detections=100)[0]
        keep = want.scores >= threshold
        if not keep.any():
            continue
        boxes, classes = want.boxes[keep], want.class_ids[keep]
        checked += len(boxes)
        if len(got.scores) == 0:
            continue
        ious = box_iou(boxes.float(), got.boxes.float())
        same = classes[:, None] == got.class_ids[None, :]
        agreeing += int(((ious >= 0.5) & same).any(dim=1).sum())
    return checked, agreeing


def quantize_export(
    out: Path,
    backend: Backend,
    report: ExportReport,
    calibration_images: int,
    check_images: int = 16,
) -> Int8Report:
    """Replace the float graph at ``out`` by its int8 version (``report`` describes it)."""
    if calibration_images < 1:
        raise ValueError("--calibration-images must be >= 1")
    with tempfile.TemporaryDirectory() as tmp:
        float_folder = Path(tmp) / "float"
        write_model_folder(float_folder, backend, report)
        float_backend = _load(float_folder)
        with torch.inference_mode():
            feeds = record_feeds(
                float_backend, synthetic_images(calibration_images, CALIBRATION_SEED)
            )
        int8_folder = Path(tmp) / "int8"
        shutil.copytree(float_folder, int8_folder)
        weights = int8_folder / "model.onnx"
        quantized = quantize_int8(float_folder / "model.onnx", weights, feeds)
        with torch.inference_mode():
            checked, agreeing = agreement(float_backend, _load(int8_folder), check_images)
        shutil.copyfile(weights, out)
    return Int8Report(quantized, checked, agreeing)
