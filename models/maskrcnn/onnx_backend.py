"""Mask R-CNN served through ONNX Runtime: the exported batch-1 graph, looped per image.

preprocess (the eager predictor's, on the runner's device) → :class:`OrtRunner` (DLPack
in and out) → the eager predictor's :func:`~.predictor.to_detections`, unchanged. The
graph already maps boxes to original pixels and stops at the 28×28 probabilities, so the
result equals :class:`~.backend.MaskRcnnBackend` run one image per call. (Eager batches
of images of different sizes are zero-padded to a common size, which shifts the features
near the padded borders slightly; the batch-1 graph never pads across images.)

Everything the backend needs is read from the graph's ``metadata_props`` written by
:mod:`.export`.
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
from maskserve.models.maskrcnn.backend import model_info
from maskserve.models.maskrcnn.config import MaskRcnnConfig, config_from_dict
from maskserve.models.maskrcnn.export import FAMILY, INPUT_NAME, OUTPUT_NAMES
from maskserve.models.maskrcnn.predictor import reported_labels, to_detections, to_model_input
from maskserve.models.onnxrt.metadata import read_config
from maskserve.models.onnxrt.quantize import PRECISION_KEY
from maskserve.models.onnxrt.session import OrtError, OrtRunner
from maskserve.models.registry import ModelSpec
from maskserve.models.types import Detections

log = logging.getLogger(__name__)

# [maskrcnn] keys a model.toml may set for an ONNX model: applied outside the graph.
INFERENCE_KEYS = frozenset({"mask_threshold", "detections_per_img"})
# Traced into the graph as constants at export time: changing them needs a re-export.
BAKED_KEYS = frozenset(
    {
        "min_size",
        "max_size",
        "rpn_pre_nms_top_n_test",
        "rpn_post_nms_top_n_test",
        "rpn_nms_thresh",
        "box_score_thresh",
        "box_nms_thresh",
    }
)


def config_from_metadata(metadata: dict[str, str], source: Path | str) -> MaskRcnnConfig:
    """The :class:`MaskRcnnConfig` stored in an exported graph, or a clear :class:`OrtError`."""
    return read_config(metadata, source, FAMILY, "Mask R-CNN", config_from_dict)


def with_overrides(config: MaskRcnnConfig, table: dict[str, Any]) -> MaskRcnnConfig:
    """Apply a model.toml ``[maskrcnn]`` table's inference settings to the stored config.

    Only what runs outside the graph can change: ``mask_threshold`` (the encoder's) and
    a *lower* ``detections_per_img`` (the graph's top-k is score-sorted, so keeping its
    first rows equals a smaller top-k). Sizes and thresholds are graph constants.
    """
    baked = sorted(set(table) & BAKED_KEYS)
    if baked:
        now = ", ".join(f"{k} = {getattr(config, k)!r}" for k in baked)
        raise ValueError(
            f"[maskrcnn] {baked} are baked into the ONNX graph at export ({now}) and cannot "
            "be changed here; re-export the model with a config that sets them"
        )
    unknown = sorted(set(table) - INFERENCE_KEYS - {"config", "name"})
    if unknown:
        raise ValueError(
            f"an onnxruntime Mask R-CNN model takes its config from the ONNX file; [maskrcnn] "
            f"may only set {sorted(INFERENCE_KEYS)}, not {unknown}"
        )
    for key in ("config", "name"):
        if key in table and table[key] != config.name:
            log.warning(
                "[maskrcnn] %s = %r ignored; the ONNX file holds %r", key, table[key], config.name
            )
    most = config.detections_per_img
    limit = table.get("detections_per_img", most)
    if not 0 < limit <= most:
        raise ValueError(
            f"[maskrcnn] detections_per_img = {limit}: the ONNX graph keeps at most {most} "
            f"(baked in at export); choose 1..{most}"
        )
    return replace(config, **{k: v for k, v in table.items() if k in INFERENCE_KEYS})


class MaskRcnnOnnxBackend:
    """Same interface as :class:`~.backend.MaskRcnnBackend`, running the graph in ORT."""

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
        self._check_signature()
        self.config = with_overrides(config, overrides or {})
        self._reported = reported_labels(self.config, self.device)
        info = model_info(
            self.config,
            name,
            self.device,
            torch.float32,
            backend="onnxruntime",
            provider=self.runner.provider,
            onnx=self.runner.path.name,
            precision=self.runner.metadata.get(PRECISION_KEY, "float"),
        )
        self.info = ModelInfo(**{**info.__dict__, "score_threshold": score_threshold})

    @classmethod
    def from_spec(
        cls, spec: ModelSpec, device: torch.device, score_threshold: float = 0.0
    ) -> MaskRcnnOnnxBackend:
        """The backend of a model folder whose ``weights`` is an exported ``.onnx``."""
        return cls(spec.weights, spec.name, device, score_threshold, spec.table)

    def _check_signature(self) -> None:
        if self.runner.input_names != [INPUT_NAME] or self.runner.output_names != list(
            OUTPUT_NAMES
        ):
            raise OrtError(
                f"{self.runner.path}: expected input [{INPUT_NAME!r}] and outputs "
                f"{list(OUTPUT_NAMES)}; got {self.runner.input_names} → {self.runner.output_names}"
            )

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """One [3, H, W] float image in [0, 1] → the graph's outputs, on the device."""
        return self.runner.run({INPUT_NAME: image})

    @torch.inference_mode()
    def infer(self, images: Sequence[np.ndarray], max_detections: int) -> list[Detections]:
        """Detections per image; the graph is batch-1, so images run one after another."""
        limit = min(max_detections, self.config.detections_per_img)
        out = []
        for image in images:
            original = (int(image.shape[0]), int(image.shape[1]))
            found = self.forward(to_model_input(image, self.device))
            out.append(to_detections(found, original, self.config, self._reported, limit))
        return out
