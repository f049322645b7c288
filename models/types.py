"""Typed containers passed between the model side and the server side."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Detections:
    """Every detection of one image, in descending score order.

    A family hands its masks over in the form it computes them, and the server's encoder
    turns either form into RLE without materialising full-size masks:

    * prototype masks (YOLACT, YOLO-seg): ``lowres_masks`` + ``proto_windows``, whole-image
      soft masks at prototype resolution, bilinearly upsampled to the image;
    * box masks (Mask R-CNN): ``box_masks``, one fixed-size soft mask per detection that is
      resized into its box (torchvision's ``paste_masks_in_image`` semantics).

    Attributes:
        class_ids: [N] int64, the model's 0-based class index (no background).
        scores: [N] float32.
        boxes: [N, 4] float32, (x1, y1, x2, y2) in original-image pixels.
        image_size: (height, width) of the original image.
        class_names: names indexed by class id.
        lowres_masks: [N, ph, pw] float32 soft masks at prototype resolution, already
            multiplied by sigmoid and cropped (zero outside ``proto_windows``).
        proto_windows: [N, 4] int64 (c0, r0, c1, r1), half-open prototype-pixel window
            outside of which ``lowres_masks`` is exactly zero.
        box_masks: [N, M, M] float32 mask probabilities, each covering its box.
        mask_threshold: a full-size pixel is foreground when its resized value is
            strictly above this.
        mask_scores: [N] float32 or None; YOLACT++ mask re-scoring (score × maskiou).
        pixel_windows: [N, 4] int64 (x0, y0, x1, y1) or None; with prototype masks, a
            half-open full-size pixel window outside of which every mask pixel is off
            (Ultralytics crops YOLO-seg masks to their boxes after the upsampling).
    """

    class_ids: torch.Tensor
    scores: torch.Tensor
    boxes: torch.Tensor
    image_size: tuple[int, int]
    class_names: tuple[str, ...]
    lowres_masks: torch.Tensor | None = None
    proto_windows: torch.Tensor | None = None
    box_masks: torch.Tensor | None = None
    mask_threshold: float = 0.5
    mask_scores: torch.Tensor | None = None
    pixel_windows: torch.Tensor | None = None

    def __post_init__(self) -> None:
        has_proto = self.lowres_masks is not None and self.proto_windows is not None
        if has_proto == (self.box_masks is not None):
            raise ValueError("Detections need either lowres_masks + proto_windows or box_masks")

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def select(self, keep: torch.Tensor) -> Detections:
        """A new Detections holding only the rows picked by ``keep`` (bool or index)."""

        def rows(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else tensor[keep]

        return Detections(
            class_ids=self.class_ids[keep],
            scores=self.scores[keep],
            boxes=self.boxes[keep],
            image_size=self.image_size,
            class_names=self.class_names,
            lowres_masks=rows(self.lowres_masks),
            proto_windows=rows(self.proto_windows),
            box_masks=rows(self.box_masks),
            mask_threshold=self.mask_threshold,
            mask_scores=rows(self.mask_scores),
            pixel_windows=rows(self.pixel_windows),
        )
