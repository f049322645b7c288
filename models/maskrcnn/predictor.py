"""Batched Mask R-CNN inference that stops before torchvision's full-image mask paste.

torchvision's ``MaskRCNN.forward`` ends with ``transform.postprocess``, which pastes every
28×28 mask into a full-size float canvas (N × H × W × 4 bytes). Here the same stages run
— ``transform`` (normalise, resize, pad to a multiple of 32 and batch images of
different sizes as ``config.batch_padding`` says), ``backbone``, ``rpn``, ``roi_heads``
— and only the boxes are mapped back to the original image; the 28×28 probabilities
travel on as ``box_masks`` and the server's encoder pastes them box-locally.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.transform import resize_boxes

from maskserve.models.maskrcnn.config import UNUSED_LABEL, MaskRcnnConfig
from maskserve.models.maskrcnn.roi_stage import run_roi_heads
from maskserve.models.types import Detections


class MaskRcnnPredictor:
    """Runs a torchvision :class:`MaskRCNN` on batches of RGB uint8 images of any sizes."""

    def __init__(
        self,
        model: MaskRCNN,
        config: MaskRcnnConfig,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        channels_last: bool | None = None,
        roi_stage: bool = True,
    ) -> None:
        self.device = torch.device(device)
        # bfloat16 runs the backbone + FPN only (most of the compute): torchvision's CPU
        # NMS has no bfloat16 kernel, so the RPN and ROI heads stay in float32
        self.backbone_dtype = dtype
        self.dtype = torch.float32 if dtype == torch.bfloat16 else dtype
        self.config = config
        self.model = model.eval().to(device=self.device, dtype=self.dtype)
        # NHWC convolutions: oneDNN's fast path on x86 CPUs (docs/benchmarks.md); None =
        # on for the CPU. It changes float rounding, so exact parity tests turn it off.
        if channels_last is None:
            channels_last = self.device.type == "cpu"
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model.backbone.to(dtype=dtype, memory_format=self.memory_format)
        self._reported = reported_labels(config, self.device)
        # on a CPU the ROI heads run through roi_stage.py (same answers, box pooling on
        # every core, an early-exit NMS); elsewhere through torchvision's forward
        self._roi_pool = (
            ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="maskrcnn-roi")
            if self.device.type == "cpu" and roi_stage
            else None
        )

    def preprocess(self, images: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """RGB uint8 [H, W, 3] → float [3, H, W] in [0, 1] on the device (torchvision's input)."""
        return [to_model_input(image, self.device, self.dtype) for image in images]

    @torch.inference_mode()
    def forward(self, tensors: list[torch.Tensor]) -> tuple[list[dict[str, torch.Tensor]], list]:
        """Detections in resized-image coordinates plus the resized sizes.

        How images of different sizes share a pass follows ``config.batch_padding`` (see
        :class:`MaskRcnnConfig`): torchvision's one padded tensor, or per-image padding
        with only equal padded shapes batched together.
        """
        model = self.model
        if self.config.batch_padding == "shared":
            return self._run(model.transform(tensors)[0])
        singles = [model.transform([tensor])[0] for tensor in tensors]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, single in enumerate(singles):
            groups.setdefault(tuple(single.tensors.shape[-2:]), []).append(i)
        found: list[dict[str, torch.Tensor]] = [{} for _ in tensors]
        for members in groups.values():
            sizes = [singles[i].image_sizes[0] for i in members]
            batch = ImageList(torch.cat([singles[i].tensors for i in members]), sizes)
            for i, detection in zip(members, self._run(batch)[0], strict=True):
                found[i] = detection
        return found, [single.image_sizes[0] for single in singles]

    def _run(self, batch: ImageList) -> tuple[list[dict[str, torch.Tensor]], list]:
        """backbone → rpn → roi_heads on an already transformed batch."""
        model = self.model
        pixels = batch.tensors.to(self.backbone_dtype, memory_format=self.memory_format)
        features = model.backbone(pixels)
        if self.backbone_dtype != self.dtype:
            features = {name: value.to(self.dtype) for name, value in features.items()}
        proposals, _ = model.rpn(batch, features)
        if self._roi_pool is not None:
            found = run_roi_heads(
                model.roi_heads, features, proposals, batch.image_sizes, self._roi_pool
            )
        else:
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
        boxes = resize_boxes(found["boxes"].float(), resized, original)
        return to_detections(
            {**found, "boxes": boxes}, original, self.config, self._reported, limit
        )


def to_model_input(
    image: np.ndarray, device: torch.device, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """One RGB uint8 [H, W, 3] image → float [3, H, W] in [0, 1] on ``device``."""
    if not image.flags.writeable:
        image = image.copy()  # decoded images are read-only; torch warns on wrapping them
    tensor = torch.from_numpy(np.ascontiguousarray(image)).to(device)
    return tensor.permute(2, 0, 1).to(dtype).div_(255.0)


def reported_labels(config: MaskRcnnConfig, device: torch.device) -> torch.Tensor:
    """bool [num_classes]: which torchvision labels are real classes (not background/N/A)."""
    flags = [False] + [name != UNUSED_LABEL for name in config.class_names]
    return torch.tensor(flags, dtype=torch.bool, device=device)


def to_detections(
    found: Mapping[str, torch.Tensor],
    original: tuple[int, int],
    config: MaskRcnnConfig,
    reported: torch.Tensor,
    limit: int,
) -> Detections:
    """One image's ``roi_heads`` output as :class:`Detections` (eager and ONNX alike).

    ``found`` holds ``boxes`` [N, 4] already in original-image pixels, torchvision
    ``labels`` [N] (background = 0), ``scores`` [N] and ``masks`` [N, 1, M, M] or
    [N, M, M] probabilities of the predicted class. Labels that are not real classes
    (``reported`` is False: background, COCO's "N/A" ids) are dropped before the first
    ``limit`` rows are kept; class id = label − 1.
    """
    labels = found["labels"]
    keep = torch.nonzero(reported[labels]).flatten()[:limit]
    masks = found["masks"][keep]
    if masks.dim() == 4:
        masks = masks[:, 0]
    return Detections(
        class_ids=labels[keep] - 1,
        scores=found["scores"][keep].float(),
        boxes=found["boxes"][keep].float(),
        image_size=original,
        class_names=config.class_names,
        box_masks=masks.float(),
        mask_threshold=config.mask_threshold,
    )
