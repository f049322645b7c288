"""YOLO-seg masks through YOLACT's assembly: protos of the content region → cropped soft masks.

Ultralytics' prototypes ``[nm, ph, pw]`` (stride 4) cover the whole letterboxed input,
padding included; the server's mask encoder expects low-resolution masks that cover
exactly the original image (it upsamples them bilinearly to ``image_size``). So each
image's protos are first **resampled onto its content region** (the un-padded part) at
prototype resolution: ``torchvision.ops.roi_align(aligned=True, sampling_ratio=1)`` over
the box ``[pad_left, pad_top, pad_left + content_w, pad_top + content_h]`` / stride to
``[round(content_h / 4), round(content_w / 4)]`` — one bilinear tap per output pixel at
half-pixel centres, i.e. the same function as ``F.interpolate(align_corners=False)`` of
the crop (the identity when the padding and the content are multiples of the stride).
Because resampling is linear it commutes with ``coeffs @ protos``. Then YOLACT's
:func:`~maskserve.models.yolact.assemble.assemble_masks` (matmul → sigmoid → its 1-pixel
padded crop) runs with boxes relative to the original image, ``mask_threshold = 0.5``
(sigmoid > 0.5 ≡ Ultralytics' logit > 0), and the crop is then tightened:

* **windows**: the proto pixels the box touches, ``[floor(x1·w), ceil(x2·w))``;
* **edge caps** (:func:`edge_caps`): the soft values of the pixels the box edge cuts
  are capped so that the server's bilinear upsampling crosses 0.5 at the box edge
  (exact for a saturated mask next to a cropped zero). Masks inside their box keep
  their own boundary; masks that spill past the box are cut at it, not at YOLACT's
  padded crop (1–2 proto pixels = 4–8 / gain original pixels further out).

Known differences from Ultralytics' ``process_mask_native`` (full-size logits > 0, then a
crop to the box at full resolution), measured in ``tests/yoloseg/test_serving.py``
(IoU ≥ 0.98 on its scenes; YOLACT's plain padded crop gives ≈ 0.95 where the box
cuts the mask):

* **crop in proto space**: approximated by windows + caps as above; the caps assume
  a saturated mask next to the edge, so a soft mask can lose a little area where the
  box touches it (≈ 1 % IoU on a tangent ellipse in the tests);
* **sigmoid, then upsample**: probabilities, not logits, are interpolated, which moves
  the 0.5 boundary by up to ~¼ proto pixel where the logits are steep and the taps sit
  asymmetrically around the zero crossing (after an off-grid content resample);
* **two resamplings**: protos → content region (proto resolution) → original size,
  instead of one crop-and-resize of the full-resolution logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.ops import roi_align

from maskserve.models.types import Detections
from maskserve.models.yolact.assemble import assemble_masks
from maskserve.models.yoloseg.decode import Candidates, boxes_to_original
from maskserve.models.yoloseg.preprocess import Letterbox

MASK_THRESHOLD = 0.5


def content_protos(protos: torch.Tensor, box: Letterbox, input_hw: tuple[int, int]) -> torch.Tensor:
    """One image's protos ``[nm, ph, pw]`` resampled onto its content region → ``[ch, cw, nm]``.

    The output grid covers exactly the original image, so a mask built from it can be
    upsampled straight to the original size.
    """
    ph, pw = protos.shape[1], protos.shape[2]
    stride_y, stride_x = input_hw[0] / ph, input_hw[1] / pw
    out_h = max(round(box.content_h / stride_y), 1)
    out_w = max(round(box.content_w / stride_x), 1)
    roi = protos.new_tensor(
        [
            [
                0.0,
                box.pad_left / stride_x,
                box.pad_top / stride_y,
                (box.pad_left + box.content_w) / stride_x,
                (box.pad_top + box.content_h) / stride_y,
            ]
        ]
    )
    resampled = roi_align(
        protos[None].float(),
        roi.float(),
        (out_h, out_w),
        spatial_scale=1.0,
        sampling_ratio=1,
        aligned=True,
    )
    return resampled[0].permute(1, 2, 0).contiguous()


def box_extent(
    relative: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Relative boxes (corners in any order) → ([N, 2] (x, y) low, [N, 2] high) in proto px."""
    size = relative.new_tensor([width, height])
    lo = torch.minimum(relative[:, :2], relative[:, 2:]) * size
    hi = torch.maximum(relative[:, :2], relative[:, 2:]) * size
    return lo, hi


def touched_windows(relative: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[N, 4] int64 half-open windows (c0, r0, c1, r1) of the proto pixels a box overlaps.

    Pixel ``c`` spans ``[c, c + 1)``, the box ``[x1·w, x2·w)`` (corners in any order), so
    the window is ``[floor(x1·w), ceil(x2·w))``, clipped to the grid.
    """
    size = relative.new_tensor([width, height])
    lo, hi = box_extent(relative, height, width)
    lo, hi = torch.floor(lo), torch.ceil(hi)
    lo = torch.minimum(lo.clamp(min=0), size)
    hi = torch.maximum(torch.minimum(hi, size), lo)
    return torch.cat((lo, hi), dim=1).long()


def edge_caps(relative: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[N, height, width] upper bounds for soft mask values that put the crop at the box edge.

    With ``f`` the fraction of a pixel (along one axis) inside the box, and the pixel
    beyond it 0 (cropped), bilinear upsampling crosses 0.5 exactly at the box edge when
    the pixel holds ``0.5 / (1.5 − f)`` (f ≥ ½; its inner neighbour saturated for f < ½:
    ``f / (0.5 + f)``). Fully covered pixels get 1 (no change), untouched pixels 0.
    """
    lo, hi = box_extent(relative, height, width)

    def cap(n: int, axis: int) -> torch.Tensor:
        start = torch.arange(n, device=relative.device, dtype=relative.dtype)[None, :]
        upper = torch.minimum(start + 1, hi[:, axis : axis + 1])
        f = (upper - torch.maximum(start, lo[:, axis : axis + 1])).clamp(0, 1)
        return torch.where(f >= 0.5, 0.5 / (1.5 - f), f / (0.5 + f))

    return torch.minimum(cap(height, 1)[:, :, None], cap(width, 0)[:, None, :])


def assemble_image(
    protos: torch.Tensor,
    found: Candidates,
    box: Letterbox,
    input_hw: tuple[int, int],
    class_names: Sequence[str],
) -> Detections:
    """One image's :class:`Detections`: boxes in original pixels and cropped low-res masks."""
    boxes = boxes_to_original(found.boxes, box)
    proto = content_protos(protos, box, input_hw)
    height, width = proto.shape[0], proto.shape[1]
    scale = boxes.new_tensor([box.image_w, box.image_h, box.image_w, box.image_h])
    relative = boxes / scale
    masks, _ = assemble_masks(proto[None], found.coeffs[None].float(), relative[None])
    windows = touched_windows(relative, height, width)
    masks = torch.minimum(masks[0], edge_caps(relative, height, width))
    return Detections(
        class_ids=found.class_ids,
        scores=found.scores.float(),
        boxes=boxes.float(),
        lowres_masks=masks,
        proto_windows=windows,
        image_size=(box.image_h, box.image_w),
        class_names=tuple(class_names),
        mask_threshold=MASK_THRESHOLD,
    )
