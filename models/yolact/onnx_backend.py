"""YOLACT served through ONNX Runtime: the exported heads graph + our own post-processing.

preprocess (torch, on the runner's device) → :class:`OrtRunner` (zero-copy DLPack in and
out) → :class:`RawOutputs` → the eager predictor's detect + assemble, unchanged
(:class:`YolactPostprocess`). Everything the backend needs (config, class names, input
size) is read from the graph's ``metadata_props`` written by :mod:`.export`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maskserve.models.base import ModelInfo
from maskserve.models.onnxrt.metadata import read_config
from maskserve.models.onnxrt.quantize import PRECISION_KEY
from maskserve.models.onnxrt.session import OrtError, OrtRunner
from maskserve.models.types import Detections
from maskserve.models.yolact.config import YolactConfig
from maskserve.models.yolact.config_io import config_from_dict
from maskserve.models.yolact.export import (
    FAMILY,
    INPUT_NAME,
    MASKIOU_INPUT,
    MASKIOU_OUTPUT,
    OUTPUT_NAMES,
    maskiou_path,
)
from maskserve.models.yolact.network import RawOutputs
from maskserve.models.yolact.predictor import YolactPostprocess
from maskserve.models.yolact.preprocess import preprocess_images

log = logging.getLogger(__name__)

# [yolact] keys a model.toml may override for an ONNX model: inference settings only,
# since the architecture is baked into the graph.
INFERENCE_KEYS = frozenset(
    {
        "conf_thresh",
        "nms_thresh",
        "nms_top_k",
        "max_num_detections",
        "mask_threshold",
        "rescore_bbox",
    }
)
_ORT_DTYPES = {"tensor(float)": torch.float32, "tensor(float16)": torch.float16}


def config_from_metadata(metadata: dict[str, str], source: Path | str) -> YolactConfig:
    """The :class:`YolactConfig` stored in an exported graph, or a clear :class:`OrtError`."""
    return read_config(metadata, source, FAMILY, "YOLACT", config_from_dict)


def with_overrides(config: YolactConfig, table: dict[str, Any]) -> YolactConfig:
    """Apply a model.toml ``[yolact]`` table's inference settings to the stored config."""
    unknown = set(table) - INFERENCE_KEYS - {"config"}
    if unknown:
        raise ValueError(
            f"an onnxruntime YOLACT model takes its config from the ONNX file; [yolact] may "
            f"only set {sorted(INFERENCE_KEYS)}, not {sorted(unknown)}"
        )
    if "config" in table and table["config"] != config.name:
        log.warning(
            "[yolact] config = %r ignored; the ONNX file holds %r", table["config"], config.name
        )
    return replace(config, **{k: v for k, v in table.items() if k in INFERENCE_KEYS})


class YolactOnnxBackend:
    """Same interface as :class:`YolactBackend`, running the heads in ONNX Runtime."""

    def __init__(
        self,
        path: Path | str,
        name: str,
        device: torch.device | str = "cpu",
        score_threshold: float = 0.0,
        overrides: dict[str, Any] | None = None,
        intra_op_threads: int | None = None,
    ) -> None:
        self.runner = OrtRunner(path, device, intra_op_threads)
        self.device = self.runner.device
        config = config_from_metadata(self.runner.metadata, self.runner.path)
        self.config = with_overrides(config, overrides or {})
        self.dtype = self._input_dtype()
        self.maskiou_runner = self._maskiou_runner(intra_op_threads)
        scorer = self._maskiou if self.maskiou_runner is not None else None
        self.post = YolactPostprocess(self.config, scorer)
        self.info = ModelInfo(
            name=name,
            family=FAMILY,
            class_names=self.config.class_names,
            input_size=self.config.max_size,
            device=str(self.device),
            dtype=str(self.dtype).removeprefix("torch."),
            score_threshold=score_threshold,
            max_detections=self.config.max_num_detections,
            extra={
                "config": self.config.name,
                "backend": "onnxruntime",
                "provider": self.runner.provider,
                "onnx": self.runner.path.name,
                "precision": self.runner.metadata.get(PRECISION_KEY, "float"),
            },
        )

    def _input_dtype(self) -> torch.dtype:
        inputs = {i.name: i.type for i in self.runner.session.get_inputs()}
        missing = [n for n in OUTPUT_NAMES if n not in self.runner.output_names]
        if INPUT_NAME not in inputs or missing:
            raise OrtError(
                f"{self.runner.path}: expected input {INPUT_NAME!r} and outputs "
                f"{list(OUTPUT_NAMES)}; got {list(inputs)} → {self.runner.output_names}"
            )
        if inputs[INPUT_NAME] not in _ORT_DTYPES:
            raise OrtError(f"{self.runner.path}: unsupported input type {inputs[INPUT_NAME]}")
        return _ORT_DTYPES[inputs[INPUT_NAME]]

    def _maskiou_runner(self, threads: int | None) -> OrtRunner | None:
        if not self.config.use_maskiou:
            return None
        side = maskiou_path(self.runner.path)
        if not side.is_file():
            raise OrtError(
                f"config {self.config.name!r} re-scores masks (use_maskiou) but its graph "
                f"{side.name} is missing beside {self.runner.path.name}"
            )
        return OrtRunner(side, self.device, threads)

    def _maskiou(self, lowres: torch.Tensor) -> torch.Tensor:
        assert self.maskiou_runner is not None
        masks = lowres[:, None].to(self.dtype)
        return self.maskiou_runner.run({MASKIOU_INPUT: masks})[MASKIOU_OUTPUT]

    def forward(self, batch: torch.Tensor) -> RawOutputs:
        """Network input [B, 3, S, S] → float32 raw outputs (conf softmaxed), on the device."""
        outputs = self.runner.run({INPUT_NAME: batch.to(self.dtype)})
        return RawOutputs(**{name: outputs[name] for name in OUTPUT_NAMES})

    @torch.inference_mode()
    def infer(self, images: Sequence[np.ndarray], max_detections: int) -> list[Detections]:
        if len(images) == 0:
            return []
        sizes = [(int(img.shape[0]), int(img.shape[1])) for img in images]
        raw = self.forward(preprocess_images(images, self.config, self.device))
        found = self.post.detect(raw, max_detections)
        return self.post.assemble(raw, found, sizes, max_detections=max_detections)
