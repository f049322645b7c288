"""The Mask R-CNN family's backend, built from a model folder.

``model.toml``'s ``[maskrcnn]`` table is either a full config (see
:func:`~.config.config_to_dict`), ``config = "<published name>"`` plus overrides, or
empty (the config is inferred from the checkpoint's keys).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchvision.models.detection import MaskRCNN

from maskserve.models.base import ModelInfo
from maskserve.models.maskrcnn.checkpoint import load_maskrcnn
from maskserve.models.maskrcnn.config import MaskRcnnConfig, config_from_dict
from maskserve.models.maskrcnn.predictor import MaskRcnnPredictor
from maskserve.models.registry import ModelSpec
from maskserve.models.types import Detections


def model_info(
    config: MaskRcnnConfig, name: str, device: torch.device, dtype: torch.dtype, **extra: str
) -> ModelInfo:
    return ModelInfo(
        name=name,
        family="maskrcnn",
        class_names=config.class_names,
        input_size=config.max_size,
        device=str(device),
        dtype=str(dtype).removeprefix("torch."),
        max_detections=config.detections_per_img,
        extra={"config": config.name, **extra},
    )


class MaskRcnnBackend:
    """Eager torchvision Mask R-CNN on one device."""

    def __init__(
        self,
        model: MaskRCNN,
        config: MaskRcnnConfig,
        name: str,
        device: torch.device,
        dtype: torch.dtype,
        score_threshold: float = 0.0,
        channels_last: bool | None = None,
    ) -> None:
        self.predictor = MaskRcnnPredictor(model, config, device, dtype, channels_last)
        info = model_info(config, name, device, dtype, backend="torch")
        self.info = ModelInfo(**{**info.__dict__, "score_threshold": score_threshold})

    def infer(self, images: Sequence[np.ndarray], max_detections: int) -> list[Detections]:
        return self.predictor.predict(images, max_detections=max_detections)


def config_from_table(table: dict) -> MaskRcnnConfig | None:
    """The folder's config, or ``None`` to infer it from the weights."""
    return config_from_dict(table) if table else None


def maskrcnn_backend_factory(
    spec: ModelSpec,
    device: torch.device,
    dtype: torch.dtype,
    channels_last: bool | None = None,
) -> MaskRcnnBackend:
    threshold = float(spec.settings.get("score_threshold", 0.0))
    if spec.settings.get("backend", "torch") == "onnxruntime":
        from maskserve.models.maskrcnn.onnx_backend import MaskRcnnOnnxBackend

        return MaskRcnnOnnxBackend.from_spec(spec, device, threshold)
    model, config = load_maskrcnn(spec.weights, config_from_table(spec.table))
    return MaskRcnnBackend(model, config, spec.name, device, dtype, threshold, channels_last)
