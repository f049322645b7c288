"""Windowed bilinear upsampling + threshold of cropped prototype-resolution masks.

The reference is ``F.interpolate(lowres[None], (H, W), mode="bilinear",
align_corners=False)[0] > threshold`` on the CPU.  For output sizes with ``H + W > 128``
PyTorch's CPU kernel (``upsample_non_separable_Nd_kernel_impl``) evaluates, per output
pixel, with taps ``i0, i1`` and weights ``w0, w1`` per axis::

    t(r) = fma(a[r, ix0], wx0, a[r, ix1] * wx1)        # along the width first
    out  = fma(t(iy0), wy0, t(iy1) * wy1)              # then along the height
    src  = fma(scale, dst + 0.5, -0.5)                 # the source coordinate, float32

(the FMAs come from the compiler contracting ``a*b + c*d``; measured bit-exact on this
build).  ``torch.addcmul`` is a true fused multiply-add on the CPU, so the same two
expressions reproduce the reference bit for bit.  For tiny outputs (``H + W <= 128``)
PyTorch switches to a channels-last kernel with a different summation order; there a
pixel whose value lies within a rounding error of the threshold may flip.

A mask is exactly zero outside its prototype window, so an output pixel can only be
non-zero if one of its taps lies inside that window along both axes.  Because taps are
monotone in the output coordinate, that set is a rectangle, found by two binary searches
per axis; only that rectangle is computed.

Masks are processed in groups of similar window width.  The width pass interpolates the
proto rows a group needs over the union of its windows' columns with the global column
taps (a uniform ``index_select``).  The height pass stacks the rows of all windows of the
group (heights are never padded): each output row is two row gathers of ``Wg`` values at
per-row offsets (a sliding ``as_strided`` view, so every window starts at its own column)
and two fused multiply-adds.  Columns past a window's own width hold other windows'
values; the run extraction ignores them.  The layout is described in
:class:`GroupPlan`; :mod:`maskserve.masks.rle_torch` turns it into run boundaries.
On CUDA the same expressions run, but the reference there would be CUDA's own
interpolate kernel, which evaluates a different expression: pixels within rounding of the
threshold may then differ from it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

_F32 = np.float32


@dataclass(frozen=True)
class AxisTaps:
    """PyTorch's bilinear taps for one axis (``align_corners=False``), per output index."""

    i0: np.ndarray
    i1: np.ndarray
    w0: np.ndarray
    w1: np.ndarray


@functools.lru_cache(maxsize=64)
def axis_taps(in_size: int, out_size: int) -> AxisTaps:
    """Source indices and weights exactly as ``compute_source_index_and_lambda`` (float32).

    ``src = fma(scale, dst + 0.5, -0.5)`` is evaluated in float64, where the product and
    the sum are exact, and rounded once to float32: that is a correctly rounded FMA.
    """
    if in_size <= 0 or out_size <= 0:
        raise ValueError(f"axis sizes must be positive, got {in_size} -> {out_size}")
    dst = np.arange(out_size, dtype=np.int64)
    if in_size == out_size:
        ones = np.ones(out_size, dtype=_F32)
        return AxisTaps(dst, dst.copy(), ones, np.zeros(out_size, dtype=_F32))
    scale = _F32(in_size) / _F32(out_size)
    centre = dst.astype(_F32) + _F32(0.5)
    src = (np.float64(scale) * centre.astype(np.float64) - 0.5).astype(_F32)
    src = np.maximum(src, _F32(0.0))
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    lam = np.clip(src - i0.astype(_F32), _F32(0.0), _F32(1.0)).astype(_F32)
    i1 = i0 + (i0 < in_size - 1)
    for array in (i0, i1, lam):
        array.setflags(write=False)
    w0 = (_F32(1.0) - lam).astype(_F32)
    w0.setflags(write=False)
    return AxisTaps(i0, i1, w0, lam)


def output_windows(
    proto_windows: np.ndarray, proto_size: tuple[int, int], image_size: tuple[int, int]
) -> np.ndarray:
    """Output-pixel rectangle each mask can be non-zero in.

    Args:
        proto_windows: [N, 4] (c0, r0, c1, r1), half-open, in prototype pixels.
        proto_size: (ph, pw).
        image_size: (H, W).

    Returns:
        [N, 4] int64 (x0, y0, x1, y1), half-open, in output pixels; all zeros where the
        mask is necessarily empty.
    """
    win = np.asarray(proto_windows, dtype=np.int64).reshape(-1, 4)
    (ph, pw), (height, width) = proto_size, image_size
    c0, c1 = np.clip(win[:, 0], 0, pw), np.clip(win[:, 2], 0, pw)
    r0, r1 = np.clip(win[:, 1], 0, ph), np.clip(win[:, 3], 0, ph)
    tx, ty = axis_taps(pw, width), axis_taps(ph, height)
    # Output x touches the window iff i1(x) >= c0 and i0(x) < c1 (i1 - i0 is 0 or 1).
    x0 = np.searchsorted(tx.i1, c0, side="left")
    x1 = np.searchsorted(tx.i0, c1, side="left")
    y0 = np.searchsorted(ty.i1, r0, side="left")
    y1 = np.searchsorted(ty.i0, r1, side="left")
    out = np.stack([x0, y0, x1, y1], axis=1).astype(np.int64)
    empty = (c1 <= c0) | (r1 <= r0) | (x1 <= x0) | (y1 <= y0)
    out[empty] = 0
    return out


def plan_groups(
    windows: np.ndarray, members: np.ndarray, slack: float, max_pixels: int
) -> list[np.ndarray]:
    """Split masks into groups of similar window width.

    Rows of a group are concatenated (heights cost nothing), widths are padded to the
    group's widest window.  Masks are taken in decreasing width; a group is closed when its
    padded size would exceed ``slack`` x its real size (+ 4096 so that tiny masks share
    groups freely) or ``max_pixels``.
    """
    rows = windows[members, 3] - windows[members, 1] + 1
    widths = windows[members, 2] - windows[members, 0]
    groups: list[list[int]] = []
    group_width = group_rows = group_area = 0
    for k in np.argsort(-widths, kind="stable").tolist():
        r, w = int(rows[k]), int(widths[k])
        cost = (group_rows + r) * group_width
        if groups and cost <= slack * (group_area + r * w) + 4096 and cost <= max_pixels:
            groups[-1].append(k)
            group_rows, group_area = group_rows + r, group_area + r * w
        else:
            groups.append([k])
            group_width, group_rows, group_area = w, r, r * w
    return [members[np.asarray(g, dtype=np.int64)] for g in groups]


@dataclass(frozen=True)
class GroupPlan:
    """Host-side tables to upsample one group of windows (see :func:`make_group_plan`).

    Width pass: the group's source rows are interpolated over the union of its windows'
    columns (``union_width`` columns from image column ``col_lo``) with the global column
    taps, giving ``T`` [S, union_width].  Height pass: output row ``r`` reads ``Wg``
    consecutive values of ``T`` starting at flat offset ``row_offsets[k, r]`` (tap ``k``).

    Layout of the group's output (``R`` rows of width ``Wg``): row 0 is all False; then
    each member owns ``h + 1`` rows, its window rows followed by one False row (zero
    weights).  Columns at or past a row's ``row_width`` belong to other windows and are
    ignored by the run extraction.

    Attributes:
        members: [G] mask indices (into the request's N masks).
        source_rows: [S] rows of ``lowres.reshape(N * ph, pw)`` feeding the width pass.
        col_taps, col_weights: [2, union_width] proto column taps / weights.
        row_offsets, row_weights: [2, R] flat offsets into ``T`` and weights.
        row_base: [R] flat column-major image index of a row's first pixel,
            ``x0 * H + y0 + j``.
        row_member: [R] member owning each output row.
        row_width: [R] window width of the owning member.
    """

    members: np.ndarray
    source_rows: np.ndarray
    col_taps: np.ndarray
    col_weights: np.ndarray
    row_offsets: np.ndarray
    row_weights: np.ndarray
    row_base: np.ndarray
    row_member: np.ndarray
    row_width: np.ndarray

    @property
    def width(self) -> int:
        """Padded window width ``Wg`` of the group."""
        return int(self.row_width.max())


def _source_rows(
    members: np.ndarray, y0: np.ndarray, h: np.ndarray, ty: AxisTaps, ph: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Proto rows each window's height pass reads: (global rows, first proto row, start)."""
    src_lo = ty.i0[y0]
    n_src = ty.i1[y0 + h - 1] - src_lo + 1
    src_start = np.cumsum(n_src) - n_src
    owner = np.repeat(np.arange(members.shape[0]), n_src)
    local = np.arange(int(n_src.sum())) - src_start[owner]
    return (members * ph + src_lo)[owner] + local, src_lo, src_start


def make_group_plan(
    members: np.ndarray,
    windows: np.ndarray,
    proto_size: tuple[int, int],
    image_size: tuple[int, int],
) -> GroupPlan:
    """Index/weight tables to upsample the (non-empty) windows of ``members`` together."""
    (ph, pw), (height, width) = proto_size, image_size
    tx, ty = axis_taps(pw, width), axis_taps(ph, height)
    x0, y0 = windows[members, 0], windows[members, 1]
    w, h = windows[members, 2] - x0, windows[members, 3] - y0
    col_lo = int(x0.min())
    union = slice(col_lo, int(windows[members, 2].max()))
    source_rows, src_lo, src_start = _source_rows(members, y0, h, ty, ph)
    union_width = union.stop - union.start

    owner = np.repeat(np.arange(members.shape[0]), h + 1)
    j = np.arange(owner.shape[0]) - np.repeat(np.cumsum(h + 1) - (h + 1), h + 1)
    valid = j < h[owner]
    y = np.where(valid, y0[owner] + j, 0)
    first = (src_start - src_lo)[owner] * union_width + (x0 - col_lo)[owner]
    offsets = [np.where(valid, tap[y] * union_width + first, 0) for tap in (ty.i0, ty.i1)]
    weights = [np.where(valid, wt[y], 0) for wt in (ty.w0, ty.w1)]
    return GroupPlan(
        members=members,
        source_rows=source_rows,
        col_taps=np.stack([tx.i0[union], tx.i1[union]]),
        col_weights=np.stack([tx.w0[union], tx.w1[union]]),
        row_offsets=np.stack([np.r_[0, o] for o in offsets]),
        row_weights=np.stack([np.r_[0, wt] for wt in weights]).astype(_F32),
        row_base=np.r_[0, x0[owner] * height + y0[owner] + j],
        row_member=np.r_[0, owner],
        row_width=np.r_[w[0], w[owner]],
    )


def upsample_group(lowres_rows: torch.Tensor, plan: GroupPlan, threshold: float) -> torch.Tensor:
    """Threshold the bilinear upsampling of one group's windows.

    Args:
        lowres_rows: ``lowres.reshape(N * ph, pw)``, float32, on the worker's device.
        plan: the group's tables.
        threshold: strict threshold (>= 0, so zero-weight rows stay False).

    Returns:
        bool [R, Wg] on the device, laid out as described in :class:`GroupPlan`.
    """
    device = lowres_rows.device
    n_src, union_width = plan.source_rows.shape[0], plan.col_taps.shape[1]
    n_rows, wg = plan.row_offsets.shape[1], plan.width
    ints = np.concatenate([plan.source_rows, plan.col_taps.ravel(), plan.row_offsets.ravel()])
    floats = np.concatenate([plan.col_weights.ravel(), plan.row_weights.ravel()])
    ints_d = torch.from_numpy(ints).to(device)
    floats_d = torch.from_numpy(floats).to(device)
    src_rows, col_taps, row_offsets = torch.split(ints_d, [n_src, 2 * union_width, 2 * n_rows])
    col_w, row_w = torch.split(floats_d, [2 * union_width, 2 * n_rows])
    col_taps, col_w = col_taps.view(2, union_width), col_w.view(2, union_width)
    row_offsets, row_w = row_offsets.view(2, n_rows), row_w.view(2, n_rows, 1)

    source = lowres_rows.index_select(0, src_rows)
    # T plus a tail that the last rows' reads past a window's width run into (ignored).
    flat = torch.empty(n_src * union_width + wg, dtype=torch.float32, device=device)
    flat[n_src * union_width :] = 0.0
    across = flat[: n_src * union_width].view(n_src, union_width)
    tap1 = source.index_select(1, col_taps[1]).mul_(col_w[1])
    torch.addcmul(tap1, source.index_select(1, col_taps[0]), col_w[0], out=across)
    sliding = flat.as_strided((n_src * union_width, wg), (1, 1))
    out = sliding.index_select(0, row_offsets[1]).mul_(row_w[1])
    out.addcmul_(sliding.index_select(0, row_offsets[0]), row_w[0])
    return out > threshold
