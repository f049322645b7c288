"""int8 static quantisation of an exported graph, calibrated on synthetic images.

Why static QDQ: the forward (convolutions) is ~85 % of an image's CPU time, and
onnxruntime runs QDQ-quantised convolutions with int8 kernels (VNNI where the CPU has it).
Only ``Conv`` nodes are quantised (per-channel int8 weights, uint8 activations); the
post-processing that the graph may hold (RoIAlign, NMS, softmax) stays float.

Calibration needs the exact tensors the graph sees, after each family's preprocessing.
Rather than re-implementing that per family, the float graph is served by its own family
backend on synthetic images while its :class:`OrtRunner` records every feed; onnxruntime's
MinMax calibrator then reads those recordings.  What it costs in accuracy is measured by
``maskserve evaluate`` on the held-out images and written in docs/benchmarks.md.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from maskserve.models.onnxrt.metadata import write_metadata
from maskserve.progress import Progress

PRECISION_KEY = "precision"
CALIBRATION_SEED = 7  # not the held-out seed (2026) of `maskserve evaluate`


@dataclass
class QuantizeReport:
    calibration_feeds: int
    quantized_convs: int
    float_convs: int


def synthetic_images(count: int, seed: int, width: int = 384, height: int = 288) -> list[Any]:
    """``count`` synthetic shape images (RGB uint8), the generator the models train on."""
    from maskserve.models.synthetic.generator import make_batch

    rng = np.random.default_rng(seed)
    return [sample.image for sample in make_batch(rng, count, height, width)]


def record_feeds(backend: Any, images: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Run ``backend`` (an ONNX family backend with a ``runner``) and keep every feed."""
    runner = backend.runner
    runner.recording = []
    progress = Progress("export: record calibration inputs", len(images))
    try:
        for image in images:
            backend.infer([image], max_detections=100)
            progress.advance()
        return runner.recording
    finally:
        runner.recording = None


class _Feeds:
    """onnxruntime's CalibrationDataReader protocol over recorded feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._iter: Iterator[dict[str, np.ndarray]] = iter(feeds)
        self._progress = Progress("export: calibrate", len(feeds))

    def get_next(self) -> dict[str, np.ndarray] | None:
        feed = next(self._iter, None)
        if feed is not None:
            self._progress.advance()
        return feed


def quantize_int8(source: Path, target: Path, feeds: list[dict[str, np.ndarray]]) -> QuantizeReport:
    """Write ``target``: ``source`` with its convolutions quantised to int8 (QDQ).

    The source's ``metadata_props`` are carried over, plus ``precision = "int8"``, so a
    family backend loads the result exactly like the float export.
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not feeds:
        raise ValueError("int8 calibration needs at least one recorded input")
    prepared = target.with_suffix(".prepared.onnx")
    # shape inference + graph optimisation first, as onnxruntime recommends for QDQ
    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    quantize_static(
        str(prepared),
        str(target),
        _Feeds(feeds),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["Conv"],
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )
    prepared.unlink()
    metadata = {
        p.key: p.value for p in onnx.load(str(source), load_external_data=False).metadata_props
    }
    metadata[PRECISION_KEY] = "int8"
    proto = write_metadata(target, metadata)
    dequantized = {
        out
        for node in proto.graph.node
        if node.op_type == "DequantizeLinear"
        for out in node.output
    }
    convs = [node for node in proto.graph.node if node.op_type == "Conv"]
    quantized = sum(1 for node in convs if node.input[1] in dequantized)
    return QuantizeReport(len(feeds), quantized, len(convs) - quantized)
