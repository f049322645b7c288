"""Batched Mask R-CNN inference that stops before torchvision's full-image mask paste.

torchvision's ``MaskRCNN.forward`` ends with ``transform.postprocess``, which pastes every
28×28 mask into a full-size float canvas (N × H × W × 4 bytes). Here the same stages run
— ``transform`` (normalise, resize, pad to a multiple of 32 and batch images of
different sizes), ``backbone``, ``rpn``, ``roi_heads`` — and only the boxes are mapped
back to the original image; the 28×28 probabilities travel on as ``box_masks`` and the
server's encoder pastes them box-locally.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.transform import resize_boxes

from ..types import Detections
from .config import UNUSED_LABEL, MaskRcnnConfig


class MaskRcnnPredictor:
    """Runs a torchvision :class:`MaskRCNN` on batches of RGB uint8 images of any sizes."""

    def __init__(
        self,
        model: MaskRCNN,
        config: MaskRcnnConfig,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.device = torch.device(device)
        self.dtype = dtype
        self.config = config
        self.model = model.eval().to(device=self.device, dtype=dtype)
        self._reported = _reported_labels(config, self.device)

    def preprocess(self, images: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """RGB uint8 [H, W, 3] → float [3, H, W] in [0, 1] on the device (torchvision's input)."""
        return [
            torch.from_numpy(np.ascontiguousarray(image))
            .to(self.device)
            .permute(2, 0, 1)
            .to(self.dtype)
            .div_(255.0)
            for image in images
        ]

    @torch.inference_mode()
    def forward(self, tensors: list[torch.Tensor]) -> tuple[list[dict[str, torch.Tensor]], list]:
        """Detections in resized-image coordinates plus the resized sizes."""
        model = self.model
        batch, _ = model.transform(tensors)
        features = model.backbone(batch.tensors)
        proposals, _ = model.rpn(batch, features)
        found, _ = model.roi_heads(features, proposals, batch.image_sizes)
        return found, batch.image_sizes

    @torch.inference_mode()
    def predict(
        self, images: Sequence[np.ndarray], max_detections: int | None = None
    ) -> list[Detections]:
        """The whole model side for a batch of RGB uint8 images."""
        if len(images) == 0:
            return []
        limit = self.config.detections_per_img if max_detections is None else max_detections
        originals = [(int(img.shape[0]), int(img.shape[1])) for img in images]
        found, resized = self.forward(self.preprocess(images))
        return [
            self._to_detections(f, size, original, limit)
            for f, size, original in zip(found, resized, originals, strict=True)
        ]

    def _to_detections(
        self,
        found: dict[str, torch.Tensor],
        resized: tuple[int, int],
        original: tuple[int, int],
        limit: int,
    ) -> Detections:
        labels = found["labels"]
        keep = torch.nonzero(self._reported[labels]).flatten()[:limit]
        boxes = resize_boxes(found["boxes"][keep].float(), resized, original)
        return Detections(
            class_ids=labels[keep] - 1,
            scores=found["scores"][keep].float(),
            boxes=boxes,
            image_size=original,
            class_names=self.config.class_names,
            box_masks=found["masks"][keep, 0].float(),
            mask_threshold=self.config.mask_threshold,
        )


def _reported_labels(config: MaskRcnnConfig, device: torch.device) -> torch.Tensor:
    """bool [num_classes]: which torchvision labels are real classes (not background/N/A)."""
    flags = [False] + [name != UNUSED_LABEL for name in config.class_names]
    return torch.tensor(flags, dtype=torch.bool, device=device)
