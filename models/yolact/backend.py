"""The YOLACT family's backend: a predictor bound to a device, built from a model folder."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from maskserve.models.base import Backend, ModelInfo
from maskserve.models.registry import ModelSpec
from maskserve.models.types import Detections
from maskserve.models.yolact.checkpoint import load_yolact
from maskserve.models.yolact.config import get_config
from maskserve.models.yolact.config_io import config_from_dict
from maskserve.models.yolact.network import Yolact
from maskserve.models.yolact.predictor import YolactPredictor

log = logging.getLogger(__name__)


class YolactBackend:
    """Runs the shared forward pass, detection and mask assembly for a batch."""

    def __init__(
        self,
        model: Yolact,
        name: str,
        device: torch.device,
        dtype: torch.dtype,
        score_threshold: float = 0.0,
        channels_last: bool | None = None,
    ) -> None:
        self.predictor = YolactPredictor(model, device, dtype, channels_last)
        config = model.config
        self.info = ModelInfo(
            name=name,
            family="yolact",
            class_names=config.class_names,
            input_size=config.max_size,
            device=str(device),
            dtype=str(dtype).removeprefix("torch."),
            score_threshold=score_threshold,
            max_detections=config.max_num_detections,
            extra={"config": config.name},
        )

    def infer(self, images: Sequence[np.ndarray], max_detections: int) -> list[Detections]:
        return self.predictor.predict(images, max_detections=max_detections)


def yolact_backend_factory(
    spec: ModelSpec,
    device: torch.device,
    dtype: torch.dtype,
    channels_last: bool | None = None,
) -> Backend:
    """``[yolact]`` is either a full config table or ``config = "<registered name>"``.

    With ``backend = "onnxruntime"`` the weights are an exported ``.onnx`` whose metadata
    holds the config; ``[yolact]`` may be empty or set inference thresholds only. Such a
    graph runs in its own dtype (float16 only if it was exported with ``--fp16``).
    """
    table = dict(spec.table)
    threshold = float(spec.settings.get("score_threshold", 0.0))
    kind = spec.settings.get("backend", "torch")
    if kind == "onnxruntime":
        from maskserve.models.yolact.onnx_backend import YolactOnnxBackend

        backend = YolactOnnxBackend(spec.weights, spec.name, device, threshold, table)
        if backend.dtype != dtype:
            log.info("%s: ONNX graph runs in %s (asked %s)", spec.name, backend.dtype, dtype)
        return backend
    if kind != "torch":
        raise ValueError(f"model {spec.name!r}: unknown backend {kind!r}; use torch or onnxruntime")
    if set(table) <= {"config"}:
        config = get_config(table["config"]) if "config" in table else None
    else:
        config = config_from_dict(table)
    model = load_yolact(spec.weights, config)
    return YolactBackend(model, spec.name, device, dtype, threshold, channels_last)
