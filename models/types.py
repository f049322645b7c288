"""Typed containers passed between the model side and the server side."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Detections:
    """Every detection of one image, in descending score order.

    Attributes:
        class_ids: [N] int64, the model's 0-based class index (no background).
        scores: [N] float32.
        boxes: [N, 4] float32, (x1, y1, x2, y2) in original-image pixels, truncated
            toward zero as the reference does (so they may be degenerate).
        lowres_masks: [N, ph, pw] float32 soft masks at prototype resolution, already
            multiplied by sigmoid and cropped (zero outside ``proto_windows``).
        proto_windows: [N, 4] int64 (c0, r0, c1, r1), half-open prototype-pixel window
            outside of which ``lowres_masks`` is exactly zero.
        image_size: (height, width) of the original image.
        mask_threshold: a full-size pixel is foreground when its upsampled value is
            strictly above this.
        class_names: names indexed by class id.
        mask_scores: [N] float32 or None; YOLACT++ mask re-scoring (score × maskiou).
    """

    class_ids: torch.Tensor
    scores: torch.Tensor
    boxes: torch.Tensor
    lowres_masks: torch.Tensor
    proto_windows: torch.Tensor
    image_size: tuple[int, int]
    class_names: tuple[str, ...]
    mask_threshold: float = 0.5
    mask_scores: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def select(self, keep: torch.Tensor) -> Detections:
        """A new Detections holding only the rows picked by ``keep`` (bool or index)."""
        return Detections(
            class_ids=self.class_ids[keep],
            scores=self.scores[keep],
            boxes=self.boxes[keep],
            lowres_masks=self.lowres_masks[keep],
            proto_windows=self.proto_windows[keep],
            image_size=self.image_size,
            class_names=self.class_names,
            mask_threshold=self.mask_threshold,
            mask_scores=None if self.mask_scores is None else self.mask_scores[keep],
        )
