"""Ultralytics' letterbox (``LetterBox(auto=False, scaleup=True, center=True)``), batched.

Geometry, exactly as ``shared/reference/yoloseg.md`` §2 (Python's ``round``, i.e. half to
even, as Ultralytics uses it):

* ``r = min(H / h0, W / w0)`` (never capped, ``scaleup=True``);
* content = ``(max(round(w0·r), 1), max(round(h0·r), 1))``;
* ``dw, dh`` = the leftover halved; ``left = round(dw − 0.1)``, ``top = round(dh − 0.1)``
  (the right / bottom border takes the rest);
* pad value 114, RGB, ``/ 255``, NCHW float32.

The resize is OpenCV's ``cv2.resize(INTER_LINEAR)`` on uint8, reimplemented in torch
integer arithmetic (:func:`cv2_linear_resize`) so that it runs on the device without an
OpenCV dependency: coefficients ``(dx + 0.5) · (1 / (dst / src)) − 0.5`` in float32, 11-bit
fixed point (``saturate_cast<short>(c · 2048)``), a horizontal pass in int32, then the
vertical pass ``((b0·(S0 >> 4)) >> 16) + ((b1·(S1 >> 4)) >> 16) + 2 >> 2``. Columns past
the edges are clamped with their weight moved to the edge pixel, rows are only
index-clamped (OpenCV treats the two axes differently). It is bit-exact against OpenCV's
own output (``tests/yoloseg/test_letterbox.py``), which is what makes maskserve's scores
equal Ultralytics' (a float bilinear resize differs by one grey level on some pixels
and moved scores by up to 3e-3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

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


def _taps(src: int, dst: int, clamp: bool) -> tuple[np.ndarray, ...]:
    """OpenCV's linear taps for one axis: (i0, i1, w0, w1), weights in 11-bit fixed point."""
    scale = 1.0 / (dst / src)
    f = ((np.arange(dst) + 0.5) * scale - 0.5).astype(np.float32)
    i0 = np.floor(f).astype(np.int64)
    f = (f - i0.astype(np.float32)).astype(np.float32)
    if clamp:  # columns: weight moved onto the edge pixel
        f[i0 < 0] = 0
        i0[i0 < 0] = 0
        high = i0 >= src - 1
        f[high] = 0
        i0[high] = src - 1
    w1 = np.rint(f * np.float32(2048)).astype(np.int32)
    w0 = np.rint((np.float32(1) - f) * np.float32(2048)).astype(np.int32)
    return np.clip(i0, 0, src - 1), np.clip(i0 + 1, 0, src - 1), w0, w1


def cv2_linear_resize(chw: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``cv2.resize(INTER_LINEAR)`` of a uint8-valued [C, H, W] tensor, bit for bit → int32."""
    device = chw.device
    pixels = chw.to(torch.int32)

    def axis(src: int, dst: int, clamp: bool) -> list[torch.Tensor]:
        return [torch.from_numpy(a).to(device) for a in _taps(src, dst, clamp)]

    x0, x1, a0, a1 = axis(chw.shape[2], width, clamp=True)
    y0, y1, b0, b1 = axis(chw.shape[1], height, clamp=False)
    rows = pixels[:, :, x0] * a0 + pixels[:, :, x1] * a1  # [C, H, w], values · 2048
    top = (b0[:, None] * (rows[:, y0] >> 4)) >> 16
    bottom = (b1[:, None] * (rows[:, y1] >> 4)) >> 16
    return ((top + bottom + 2) >> 2).clamp_(0, 255)


def _as_chw_float(image: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """RGB uint8 [H, W, 3] → [1, 3, H, W] on ``device`` (uint8 values, any dtype)."""
    if isinstance(image, np.ndarray) and not image.flags.writeable:
        image = image.copy()  # torch refuses to wrap read-only buffers safely
    pixels = torch.as_tensor(image).to(device, non_blocking=True)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected an RGB image [H, W, 3], got {tuple(pixels.shape)}")
    return pixels.permute(2, 0, 1)[None]


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
            chw = cv2_linear_resize(chw[0], box.content_h, box.content_w)[None]
        rows = slice(box.pad_top, box.pad_top + box.content_h)
        cols = slice(box.pad_left, box.pad_left + box.content_w)
        batch[i, :, rows, cols] = chw[0].float()
        boxes.append(box)
    return (batch / 255.0).to(dtype), boxes
