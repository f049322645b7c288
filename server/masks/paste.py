"""Box masks (Mask R-CNN's M×M probabilities per detection) -> run boundaries, box-local.

torchvision's ``paste_masks_in_image`` pads each M×M mask by one zero pixel, enlarges
its box about the centre by (M + 2) / M, truncates the box to integers (x0, y0, x1, y1),
bilinearly resizes the padded mask to (y1 - y0 + 1, x1 - x0 + 1) and writes it into a
zero canvas of the whole image.  Here the same resize is evaluated only over each box's
clipped window, for a group of boxes at once:

* per mask and output column/row, the bilinear taps of ``F.interpolate``
  (``align_corners=False``): ``src = (dst + 0.5) · (M + 2) / size - 0.5``, clamped at 0;
* a width pass (gather along columns) then a height pass (gather along rows), so a group of
  G windows padded to ``Hg × Wg`` costs ``G·(M+2)·Wg + G·Hg·Wg`` multiply-adds;
* positions past a window's own height/width are forced off, and the windows' rows are
  laid out as :mod:`maskserve.masks.rle_torch` expects (a False row after each window).

Pixels whose value lies within a rounding error of the threshold may differ from
torchvision's CPU kernel (whose summation order differs); tests bound this by IoU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

PADDING = 1


@dataclass(frozen=True)
class PasteWindows:
    """Integer paste boxes and their clipped image windows, on the host.

    Attributes:
        boxes: [N, 4] int64 (x0, y0, x1, y1), the enlarged, truncated paste boxes
            (inclusive ends, as torchvision: the resized mask is ``x1 - x0 + 1`` wide).
        windows: [N, 4] int64 (x0, y0, x1, y1), half-open, clipped to the image; empty
            windows are all zeros.
    """

    boxes: np.ndarray
    windows: np.ndarray


def paste_windows(boxes: torch.Tensor, mask_size: int, image_size: tuple[int, int]) -> PasteWindows:
    """torchvision's enlarged integer boxes (``expand_boxes`` + int64 cast) and windows."""
    scale = float(mask_size + 2 * PADDING) / mask_size
    b = boxes.detach().to("cpu", torch.float32)
    w_half = (b[:, 2] - b[:, 0]) * 0.5 * scale
    h_half = (b[:, 3] - b[:, 1]) * 0.5 * scale
    x_c = (b[:, 2] + b[:, 0]) * 0.5
    y_c = (b[:, 3] + b[:, 1]) * 0.5
    expanded = torch.stack((x_c - w_half, y_c - h_half, x_c + w_half, y_c + h_half), dim=1)
    ints = expanded.to(torch.int64).numpy()
    height, width = image_size
    windows = np.stack(
        [
            np.maximum(ints[:, 0], 0),
            np.maximum(ints[:, 1], 0),
            np.minimum(ints[:, 2] + 1, width),
            np.minimum(ints[:, 3] + 1, height),
        ],
        axis=1,
    )
    empty = (windows[:, 2] <= windows[:, 0]) | (windows[:, 3] <= windows[:, 1])
    windows[empty] = 0
    return PasteWindows(boxes=ints, windows=windows)


def plan_paste_groups(windows: np.ndarray, slack: float, max_pixels: int) -> list[np.ndarray]:
    """Non-empty windows grouped so that padding each group to its largest h and w costs
    at most ``slack`` × the real pixels (+ 4096) and ``max_pixels``.  Largest first."""
    heights = windows[:, 3] - windows[:, 1]
    widths = windows[:, 2] - windows[:, 0]
    members = np.flatnonzero((heights > 0) & (widths > 0))
    order = members[np.argsort(-(heights[members] * widths[members]), kind="stable")]
    groups: list[list[int]] = []
    group_h = group_w = group_area = 0
    for k in order.tolist():
        h, w = int(heights[k]), int(widths[k])
        new_h, new_w = max(group_h, h), max(group_w, w)
        cost = (len(groups[-1]) + 1) * new_h * new_w if groups else 0
        if groups and cost <= slack * (group_area + h * w) + 4096 and cost <= max_pixels:
            groups[-1].append(k)
            group_h, group_w, group_area = new_h, new_w, group_area + h * w
        else:
            groups.append([k])
            group_h, group_w, group_area = h, w, h * w
    return [np.asarray(g, dtype=np.int64) for g in groups]


def _taps(
    start: torch.Tensor, size: torch.Tensor, count: int, source: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bilinear taps for ``count`` output positions from ``start`` of a mask resized from
    ``source`` to ``size`` pixels (per member): (i0, i1, w0, w1), each [G, count]."""
    dst = start[:, None] + torch.arange(count, device=start.device)[None, :]
    scale = (source / size.to(torch.float32)).to(torch.float64)
    # PyTorch evaluates fma(scale, dst + 0.5, -0.5) in float32: in float64 the product is
    # exact, so one rounding to float32 reproduces it.
    src = ((dst.to(torch.float64) + 0.5) * scale[:, None] - 0.5).to(torch.float32).clamp(min=0.0)
    i0 = src.floor().to(torch.int64).clamp(max=source - 1)
    lam = (src - i0.to(torch.float32)).clamp(0.0, 1.0)
    i1 = (i0 + 1).clamp(max=source - 1)
    return i0, i1, 1.0 - lam, lam


def paste_group(
    padded: torch.Tensor,
    boxes: torch.Tensor,
    windows: torch.Tensor,
    shape: tuple[int, int],
    threshold: float,
) -> torch.Tensor:
    """Thresholded box-local paste of one group.

    Args:
        padded: [G, S, S] zero-padded masks (S = M + 2) on the device.
        boxes, windows: [G, 4] int64 on the device (see :class:`PasteWindows`).
        shape: (Hg, Wg), the group's largest window.
        threshold: strict.

    Returns:
        bool [G, Hg, Wg]; False outside each member's own window.
    """
    g, source = padded.shape[0], padded.shape[-1]
    hg, wg = shape
    size_w = (boxes[:, 2] - boxes[:, 0] + 1).clamp(min=1)
    size_h = (boxes[:, 3] - boxes[:, 1] + 1).clamp(min=1)
    x0, x1 = windows[:, 0] - boxes[:, 0], windows[:, 2] - boxes[:, 0]
    y0, y1 = windows[:, 1] - boxes[:, 1], windows[:, 3] - boxes[:, 1]
    cx0, cx1, cw0, cw1 = _taps(x0, size_w, wg, source)
    ry0, ry1, rw0, rw1 = _taps(y0, size_h, hg, source)
    expand_cols = (g, source, wg)
    left = padded.gather(2, cx0[:, None, :].expand(expand_cols))
    right = padded.gather(2, cx1[:, None, :].expand(expand_cols))
    across = torch.addcmul(right * cw1[:, None, :], left, cw0[:, None, :])
    expand_rows = (g, hg, wg)
    top = across.gather(1, ry0[:, :, None].expand(expand_rows))
    bottom = across.gather(1, ry1[:, :, None].expand(expand_rows))
    values = torch.addcmul(bottom * rw1[:, :, None], top, rw0[:, :, None])
    cols = torch.arange(wg, device=padded.device)[None, None, :]
    rows = torch.arange(hg, device=padded.device)[None, :, None]
    inside = (cols < (x1 - x0)[:, None, None]) & (rows < (y1 - y0)[:, None, None])
    return (values > threshold) & inside


def group_rows(
    bits: torch.Tensor, windows: torch.Tensor, members: torch.Tensor, image_height: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A group's [G, Hg, Wg] window bits in the row layout of ``row_transitions``.

    Returns:
        ``(rows [1 + G·(Hg+1), Wg], row_base, row_mask)``.
    """
    g, hg, wg = bits.shape
    device = bits.device
    rows = torch.zeros((1 + g * (hg + 1), wg), dtype=torch.bool, device=device)
    rows[1:].view(g, hg + 1, wg)[:, :hg] = bits
    local = torch.arange(hg + 1, device=device)
    base = windows[:, 0:1] * image_height + windows[:, 1:2] + local[None, :]
    owner = members[:, None].expand(g, hg + 1)
    zero = torch.zeros(1, dtype=torch.int64, device=device)
    return rows, torch.cat([zero, base.reshape(-1)]), torch.cat([zero, owner.reshape(-1)])


def pad_masks(box_masks: torch.Tensor) -> torch.Tensor:
    """[N, M, M] -> [N, M+2, M+2] float32 with a one-pixel zero border (``expand_masks``)."""
    return F.pad(box_masks.to(torch.float32), (PADDING,) * 4)
