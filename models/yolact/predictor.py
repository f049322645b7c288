"""Batched YOLACT inference: preprocess → forward → detect → assemble.

Each stage is a method so that benchmarks can time them one by one; ``predict`` runs
them all. Works on any ``torch.device`` in float32, float16 or bfloat16 (the heads' outputs
are promoted to float32 before detection, so NMS and the assembly run in float32).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import torch

from maskserve.models.conv_bn import fold_batchnorms
from maskserve.models.types import Detections
from maskserve.models.yolact.assemble import assemble_masks, boxes_to_pixels
from maskserve.models.yolact.config import YolactConfig
from maskserve.models.yolact.detect import ImageDetections, detect_image
from maskserve.models.yolact.network import RawOutputs, Yolact
from maskserve.models.yolact.preprocess import ImageInput, preprocess_images

MaskIoUScorer = Callable[[torch.Tensor], torch.Tensor]


class YolactPostprocess:
    """Detect + assemble on :class:`RawOutputs`, whoever produced them (eager or ONNX).

    ``maskiou`` maps cropped soft masks [N, h, w] to per-class IoUs [N, C] (float32); it
    is needed only for configs with ``use_maskiou`` (YOLACT++ mask re-scoring).
    """

    def __init__(self, config: YolactConfig, maskiou: MaskIoUScorer | None = None) -> None:
        self.config = config
        self.maskiou = maskiou

    @property
    def reorders(self) -> bool:
        """Whether mask re-scoring replaces Detect's scores and order (:func:`rescore`)."""
        return self.config.use_maskiou and self.config.rescore_bbox

    def detect_limit(self, max_detections: int | None) -> int:
        """Detect's cap. When re-scoring re-orders, the reference cuts after it, so Detect
        keeps at least its ``max_num_detections`` and :meth:`assemble` cuts."""
        default = self.config.max_num_detections
        if max_detections is None:
            return default
        return max(max_detections, default) if self.reorders else max_detections

    @torch.inference_mode()
    def detect(self, raw: RawOutputs, max_detections: int | None = None) -> list[ImageDetections]:
        cfg = self.config
        limit = self.detect_limit(max_detections)
        return [
            detect_image(
                raw.loc[i],
                raw.conf[i],
                raw.coeffs[i],
                raw.priors,
                cfg.conf_thresh,
                cfg.nms_thresh,
                cfg.nms_top_k,
                limit,
            )
            for i in range(raw.loc.shape[0])
        ]

    @torch.inference_mode()
    def assemble(
        self,
        raw: RawOutputs,
        found: list[ImageDetections],
        image_sizes: Sequence[tuple[int, int]],
        score_threshold: float = 0.0,
        max_detections: int | None = None,
    ) -> list[Detections]:
        """Apply the score threshold, assemble cropped masks, map boxes to pixels.

        The threshold applies to Detect's scores, before any re-scoring (as the
        reference's ``postprocess``); ``max_detections`` cuts after re-scoring.
        """
        kept = [d if score_threshold <= 0 else _above(d, score_threshold) for d in found]
        most = max((len(d.scores) for d in kept), default=0)
        batch, k = len(kept), raw.proto.shape[-1]
        coeffs = raw.proto.new_zeros((batch, most, k))
        boxes = raw.proto.new_zeros((batch, most, 4))
        for i, d in enumerate(kept):
            coeffs[i, : len(d.scores)] = d.coeffs
            boxes[i, : len(d.scores)] = d.boxes
        masks, windows = assemble_masks(raw.proto, coeffs, boxes)
        results = []
        for i, d in enumerate(kept):
            n = len(d.scores)
            lowres = masks[i, :n]
            detections = Detections(
                class_ids=d.class_ids,
                scores=d.scores,
                boxes=boxes_to_pixels(d.boxes, image_sizes[i]).float(),
                lowres_masks=lowres,
                proto_windows=windows[i, :n],
                image_size=tuple(image_sizes[i]),
                class_names=self.config.class_names,
                mask_threshold=self.config.mask_threshold,
                mask_scores=self._mask_scores(lowres, d),
            )
            results.append(self._finish(detections, max_detections))
        return results

    def _finish(self, detections: Detections, max_detections: int | None) -> Detections:
        if self.reorders:
            detections = rescore(detections)
        if max_detections is not None and len(detections) > max_detections:
            first = torch.arange(max_detections, device=detections.scores.device)
            detections = detections.select(first)
        return detections

    def _mask_scores(self, lowres: torch.Tensor, found: ImageDetections) -> torch.Tensor | None:
        if not self.config.use_maskiou:
            return None
        if lowres.shape[0] == 0:
            return found.scores.new_zeros(0)
        if self.maskiou is None:
            raise RuntimeError(f"config {self.config.name!r} uses maskiou but has no scorer")
        per_class = self.maskiou(lowres).float()
        maskiou = per_class.gather(1, found.class_ids[:, None])[:, 0]
        return found.scores * maskiou


class YolactPredictor(YolactPostprocess):
    """Runs a :class:`Yolact` on batches of RGB uint8 images of any sizes."""

    def __init__(
        self,
        model: Yolact,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        channels_last: bool | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.dtype = dtype
        # NHWC convolutions are oneDNN's fast path on x86 CPUs (1.3x the forward in fp32,
        # 1.4x more in bf16 on this machine: docs/benchmarks.md); None = on for the CPU
        if channels_last is None:
            channels_last = self.device.type == "cpu"
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.eval()
        if channels_last:  # the same fast-path switch: BN folded into the convs (1.1x more)
            fold_batchnorms(self.model)
        self.model.to(device=self.device, dtype=dtype, memory_format=self.memory_format)
        config: YolactConfig = model.config
        super().__init__(config, self._maskiou if config.use_maskiou else None)

    def _maskiou(self, lowres: torch.Tensor) -> torch.Tensor:
        return self.model.maskiou_net(lowres[:, None].to(self.dtype))

    @torch.inference_mode()
    def preprocess(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """RGB uint8 [H, W, 3] images → normalised [B, 3, S, S] network input."""
        batch = preprocess_images(images, self.config, self.device).to(self.dtype)
        return batch.contiguous(memory_format=self.memory_format)

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> RawOutputs:
        raw = self.model(batch)
        return RawOutputs(
            loc=raw.loc.float(),
            conf=torch.softmax(raw.conf.float(), dim=-1),
            coeffs=raw.coeffs.float(),
            proto=raw.proto.float(),
            priors=raw.priors,
        )

    @torch.inference_mode()
    def predict(
        self,
        images: Sequence[ImageInput],
        score_threshold: float = 0.0,
        max_detections: int | None = None,
    ) -> list[Detections]:
        """The whole model side for a batch of RGB uint8 images."""
        if len(images) == 0:
            return []
        sizes = [(int(img.shape[0]), int(img.shape[1])) for img in images]
        raw = self.forward(self.preprocess(images))
        found = self.detect(raw, max_detections)
        return self.assemble(raw, found, sizes, score_threshold, max_detections)


def _above(found: ImageDetections, threshold: float) -> ImageDetections:
    keep = found.scores > threshold
    return ImageDetections(
        boxes=found.boxes[keep],
        coeffs=found.coeffs[keep],
        class_ids=found.class_ids[keep],
        scores=found.scores[keep],
    )


def rescore(detections: Detections) -> Detections:
    """YOLACT++ as eval.py returns it for an image: score × maskiou, sorted by it.

    Its image/video path sets ``cfg.rescore_bbox`` before ``postprocess`` (so the score
    becomes score × maskiou) and then takes ``argsort(descending)`` of those scores. Ties
    (maskiou is a ReLU output, often exactly 0) keep Detect's order.
    """
    if detections.mask_scores is None:
        raise ValueError("rescore needs mask_scores (a config with use_maskiou)")
    order = torch.argsort(detections.mask_scores, descending=True, stable=True)
    ranked = detections.select(order)
    return replace(ranked, scores=ranked.mask_scores)
