"""The YOLACT family's backend: a predictor bound to a device, built from a model folder."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..base import ModelInfo
from ..registry import ModelSpec
from ..types import Detections
from .checkpoint import load_yolact
from .config import get_config
from .config_io import config_from_dict
from .network import Yolact
from .predictor import YolactPredictor


class YolactBackend:
    """Runs the shared forward pass, detection and mask assembly for a batch."""

    def __init__(
        self,
        model: Yolact,
        name: str,
        device: torch.device,
        dtype: torch.dtype,
        score_threshold: float = 0.0,
    ) -> None:
        self.predictor = YolactPredictor(model, device, dtype)
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
    spec: ModelSpec, device: torch.device, dtype: torch.dtype
) -> YolactBackend:
    """``[yolact]`` is either a full config table or ``config = "<registered name>"``."""
    table = dict(spec.table)
    if set(table) <= {"config"}:
        config = get_config(table["config"]) if "config" in table else None
    else:
        config = config_from_dict(table)
    model = load_yolact(spec.weights, config)
    threshold = float(spec.settings.get("score_threshold", 0.0))
    return YolactBackend(model, spec.name, device, dtype, threshold)
