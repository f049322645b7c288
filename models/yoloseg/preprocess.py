"""Ultralytics' letterbox (``LetterBox(auto=False, scaleup=True, center=True)``), batched.

Geometry, exactly as ``shared/reference/yoloseg.md`` §2 (Python's ``round``, i.e. half to
even, as Ultralytics uses it):

* ``r = min(H / h0, W / w0)`` (never capped, ``scaleup=True``);
* content = ``(max(round(w0·r), 1), max(round(h0·r), 1))``;
* ``dw, dh`` = the leftover halved; ``left = round(dw − 0.1)``, ``top = round(dh − 0.1)``
  (the right / bottom border takes the rest);
* pad value 114, RGB, ``/ 255``, NCHW float32.

The resize is done with torch (``F.interpolate(mode="bilinear", align_corners=False,
antialias=False)``) on the device instead of ``cv2.resize(INTER_LINEAR)``: both sample
with half-pixel centres and neither antialiases when shrinking, so they are the same
function; cv2 computes it in 11-bit fixed point on uint8, torch in float32, and we round
the result to integers like cv2's uint8 output. The two differ by at most one grey level,
on ~10 % of the pixels of a noise image (``tests/yoloseg`` measures it against cv2 when
cv2 is installed). Using torch keeps the whole pipeline on a GPU and adds no OpenCV
dependency to the server.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    """Where one original image sits inside the letterboxed network input.

    Attributes:
        image_h, image_w: the original image size.
        gain: Ultralytics' ``r`` (original → input scale before rounding).
        pad_left, pad_top: input pixels of padding before the content.
        content_w, content_h: the resized image's size in input pixels.
    """

    image_h: int
    image_w: int
    gain: float
    pad_left: int
    pad_top: int
    content_w: int
    content_h: int

    @property
    def scale_x(self) -> float:
        """Exact horizontal original → input scale of the resize (content_w / image_w)."""
        return self.content_w / self.image_w

    @property
    def scale_y(self) -> float:
        """Exact vertical original → input scale of the resize (content_h / image_h)."""
        return self.content_h / self.image_h


def letterbox_geometry(image_hw: tuple[int, int], input_hw: tuple[int, int]) -> Letterbox:
    """The letterbox numbers of an ``image_hw`` image for an ``input_hw`` network input."""
    h0, w0 = int(image_hw[0]), int(image_hw[1])
    if h0 < 1 or w0 < 1:
        raise ValueError(f"image size must be positive, got {h0}×{w0}")
    height, width = int(input_hw[0]), int(input_hw[1])
    r = min(height / h0, width / w0)
    new_w, new_h = max(round(w0 * r), 1), max(round(h0 * r), 1)
    dw, dh = (width - new_w) / 2, (height - new_h) / 2
    return Letterbox(
        image_h=h0,
        image_w=w0,
        gain=r,
        pad_left=round(dw - 0.1),
        pad_top=round(dh - 0.1),
        content_w=new_w,
        content_h=new_h,
    )


def _as_chw_float(image: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """RGB uint8 [H, W, 3] → float32 [1, 3, H, W] on ``device``."""
    if isinstance(image, np.ndarray) and not image.flags.writeable:
        image = image.copy()  # torch refuses to wrap read-only buffers safely
    pixels = torch.as_tensor(image).to(device, non_blocking=True)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected an RGB image [H, W, 3], got {tuple(pixels.shape)}")
    return pixels.permute(2, 0, 1)[None].float()


def letterbox_images(
    images: Sequence[np.ndarray | torch.Tensor],
    input_hw: tuple[int, int],
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, list[Letterbox]]:
    """RGB uint8 HWC images of any sizes → ([B, 3, H, W] in [0, 1], per-image geometry)."""
    device = torch.device(device)
    height, width = int(input_hw[0]), int(input_hw[1])
    batch = torch.full((len(images), 3, height, width), float(PAD_VALUE), device=device)
    boxes: list[Letterbox] = []
    for i, image in enumerate(images):
        chw = _as_chw_float(image, device)
        box = letterbox_geometry((chw.shape[2], chw.shape[3]), (height, width))
        if (box.content_h, box.content_w) != (box.image_h, box.image_w):
            chw = F.interpolate(
                chw,
                size=(box.content_h, box.content_w),
                mode="bilinear",
                align_corners=False,
                antialias=False,
            )
            chw = chw.round_().clamp_(0, 255)  # cv2 returns uint8
        rows = slice(box.pad_top, box.pad_top + box.content_h)
        cols = slice(box.pad_left, box.pad_left + box.content_w)
        batch[i, :, rows, cols] = chw[0]
        boxes.append(box)
    return (batch / 255.0).to(dtype), boxes
