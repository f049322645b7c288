"""YOLO-seg masks exactly as Ultralytics' ``retina_masks=True`` path builds them.

Ultralytics' ``process_mask_native`` (``shared/reference/yoloseg.md`` §4.2), per image:

1. mask logits ``coeffs @ protos`` at prototype resolution ``[n, mh, mw]`` (no sigmoid);
2. an optional bilinear upsampling by ``f`` ∈ {1, 2, 4}, the smallest factor that puts
   the letterbox padding on whole pixels;
3. ``scale_masks``: crop the padding away (``top = round(pad_h − 0.1)``, content
   ``round(orig × gain)``) and bilinear-resize (``align_corners=False``) to the original
   image size;
4. ``> 0``, then ``crop_mask``: every pixel outside the box (original pixels, columns
   ``x1 ≤ c < x2``, rows ``y1 ≤ r < y2``) is off;
5. detections whose mask is then empty are dropped.

Steps 1–3 are done here up to the content crop; the server's mask encoder performs the
final bilinear resize and the ``> 0`` threshold (it evaluates PyTorch's CPU bilinear
kernel bit for bit) and step 4 through :attr:`Detections.pixel_windows`, without any
full-size mask. Step 5 is approximated: a detection is dropped when every logit its box
can read is ≤ 0 (then its mask is certainly empty); a mask whose positive logits all
interpolate to ≤ 0 inside the box is kept, empty.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from maskserve.models.types import Detections
from maskserve.models.yoloseg.decode import Candidates, boxes_to_original
from maskserve.models.yoloseg.preprocess import Letterbox

MASK_THRESHOLD = 0.0  # logits, strictly above: Ultralytics' ``> 0``


def upsample_factor(proto_hw: tuple[int, int], image_hw: tuple[int, int]) -> int:
    """Ultralytics' ``f``: 1, 2 or 4, so that the letterbox padding is whole pixels."""
    (mh, mw), (h, w) = proto_hw, image_hw
    gain = min(4 * mh / h, 4 * mw / w)
    pad = (4 * mh - max(round(h * gain), 1)) | (4 * mw - max(round(w * gain), 1))
    return 4 // math.gcd(4, pad | pad // 2)


def content_crop(grid_hw: tuple[int, int], image_hw: tuple[int, int]) -> tuple[slice, slice]:
    """``scale_masks``' crop of a ``grid_hw`` letterboxed grid to the ``image_hw`` content."""
    (gh, gw), (h, w) = grid_hw, image_hw
    if (gh, gw) == (h, w):
        return slice(0, gh), slice(0, gw)
    gain = min(gh / h, gw / w)
    pad_w = (gw - max(round(w * gain), 1)) / 2
    pad_h = (gh - max(round(h * gain), 1)) / 2
    top, left = round(pad_h - 0.1), round(pad_w - 0.1)
    return (
        slice(top, top + max(round(h * gain), 1)),
        slice(left, left + max(round(w * gain), 1)),
    )


def box_pixels(boxes: torch.Tensor) -> torch.Tensor:
    """[N, 4] float boxes → int64 half-open pixel windows ``crop_mask`` keeps.

    Column ``c`` is kept when ``x1 ≤ c < x2``, i.e. ``ceil(x1) ≤ c < ceil(x2)``.
    """
    return torch.ceil(boxes).long()


def content_logits(
    protos: torch.Tensor, coeffs: torch.Tensor, image_hw: tuple[int, int]
) -> torch.Tensor:
    """Steps 1–3 up to the crop: ``[n, ch, cw]`` logits over exactly the original image."""
    nm, mh, mw = protos.shape
    logits = (coeffs.float() @ protos.float().reshape(nm, -1)).reshape(-1, mh, mw)
    f = upsample_factor((mh, mw), image_hw)
    if f > 1 and logits.shape[0]:
        logits = F.interpolate(logits[None], scale_factor=f, mode="bilinear")[0]
    rows, cols = content_crop((mh * f, mw * f), image_hw)
    return logits[:, rows, cols].contiguous()


def _reachable_max(logits: torch.Tensor, pixels: torch.Tensor, image_hw: tuple[int, int]):
    """Per mask, the largest logit any pixel of its pixel window can interpolate from."""
    ch, cw = logits.shape[1], logits.shape[2]
    scale = pixels.new_tensor([cw / image_hw[1], ch / image_hw[0]] * 2, dtype=torch.float64)
    lo = torch.floor(pixels[:, :2] * scale[:2] - 0.5).long() - 1
    hi = torch.ceil(pixels[:, 2:] * scale[2:]).long() + 1
    best = []
    for i in range(logits.shape[0]):
        c0, r0 = max(int(lo[i, 0]), 0), max(int(lo[i, 1]), 0)
        c1, r1 = min(int(hi[i, 0]), cw), min(int(hi[i, 1]), ch)
        empty = c1 <= c0 or r1 <= r0 or pixels[i, 2] <= pixels[i, 0] or pixels[i, 3] <= pixels[i, 1]
        best.append(-1.0 if empty else float(logits[i, r0:r1, c0:c1].max()))
    return torch.tensor(best)


def assemble_image(
    protos: torch.Tensor,
    found: Candidates,
    box: Letterbox,
    input_hw: tuple[int, int],
    class_names: Sequence[str],
) -> Detections:
    """One image's :class:`Detections`: boxes in original pixels, content-region logits."""
    del input_hw  # the grid geometry follows from the protos, as in Ultralytics
    image_hw = (box.image_h, box.image_w)
    boxes = boxes_to_original(found.boxes.float(), box)
    logits = content_logits(protos, found.coeffs, image_hw)
    pixels = box_pixels(boxes)
    keep = (_reachable_max(logits, pixels, image_hw) > MASK_THRESHOLD).to(logits.device)
    logits, pixels, boxes = logits[keep], pixels[keep], boxes[keep]
    n, ch, cw = logits.shape
    whole = torch.tensor([0, 0, cw, ch], dtype=torch.int64, device=logits.device)
    return Detections(
        class_ids=found.class_ids[keep],
        scores=found.scores[keep].float(),
        boxes=boxes,
        lowres_masks=logits,
        proto_windows=whole.expand(n, 4).contiguous(),
        pixel_windows=pixels,
        image_size=image_hw,
        class_names=tuple(class_names),
        mask_threshold=MASK_THRESHOLD,
    )
