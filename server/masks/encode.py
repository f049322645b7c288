"""Public entry points: cropped prototype masks -> COCO compressed RLE, without full masks.

Pipeline of :func:`encode_masks` (all on ``lowres.device`` except the small host steps):

1. host: the [N, 4] proto windows (one small copy) become output windows, batched into
   groups of similar width (:mod:`maskserve.masks.window`);
2. device: per group, bilinear upsampling + threshold of only the window pixels, the
   windows' rows stacked; then the value changes down each window column
   (:mod:`maskserve.masks.rle_torch`);
3. device: all groups' transitions -> sorted -> run lengths; one int32 copy to the host;
4. host: all strings at once (:mod:`maskserve.masks.rle_string`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from maskserve.masks.paste import (
    group_rows,
    pad_masks,
    paste_group,
    paste_windows,
    plan_paste_groups,
)
from maskserve.masks.rle import Rle
from maskserve.masks.rle_string import compress_counts, decompress_counts
from maskserve.masks.rle_torch import (
    fetch_runs,
    full_mask_rows,
    row_transitions,
    run_lengths,
    sort_and_clean,
)
from maskserve.masks.window import make_group_plan, output_windows, plan_groups, upsample_group
from maskserve.models.yolact.assemble import upsample_masks

if TYPE_CHECKING:
    from maskserve.models.types import Detections

RLE = dict[str, Any]


@dataclass(frozen=True)
class StagePolicy:
    """Execution knobs of the mask stage (results never depend on them).

    Attributes:
        slack: windows are batched by similar width; a batch may hold at most ``slack``
            times its real pixels once widths are padded.  Few large batches suit a GPU
            (launch-bound), tighter ones a CPU (memory-bound).
        max_pixels: upper bound on one batch's padded pixels (memory).
        cpu_threads: intra-op threads while the stage runs on a CPU, restored afterwards;
            ``None`` keeps torch's setting.  The stage is a chain of short memory-bound
            ops: on a CPU shared with other work each multi-threaded op can wait a
            scheduler slice for its second thread (measured: 15 ms with 1 thread vs
            ~450 ms with 2 threads next to a busy training job).
    """

    slack: float = 1.5
    max_pixels: int = 1 << 22
    cpu_threads: int | None = 1


CPU_POLICY = StagePolicy()
CUDA_POLICY = StagePolicy(slack=8.0, max_pixels=1 << 25, cpu_threads=None)


def default_policy(device: torch.device) -> StagePolicy:
    """The policy used for ``device`` when none is given."""
    return CPU_POLICY if device.type == "cpu" else CUDA_POLICY


@contextlib.contextmanager
def _stage_scope(threads: int | None, device: torch.device) -> Iterator[None]:
    """No autograd, and torch's intra-op threads set to ``threads`` for CPU work.

    ``torch.set_num_threads`` is process state: threads that run their first torch op
    while this scope is open start with ``threads`` too.  The previous value is restored
    on exit.
    """
    previous = torch.get_num_threads()
    change = threads is not None and device.type == "cpu" and threads != previous
    with torch.no_grad():
        if change:
            torch.set_num_threads(threads)
        try:
            yield
        finally:
            if change:
                torch.set_num_threads(previous)


@dataclass(frozen=True)
class EncodedMasks:
    """Masks (input order) plus what falls out of the run lengths for free."""

    masks: list[Rle]
    areas: np.ndarray

    @property
    def rles(self) -> list[RLE]:
        """The masks as pycocotools' dicts."""
        return [mask.to_coco() for mask in self.masks]


def _as_rles(
    counts: np.ndarray, lengths: np.ndarray, order: np.ndarray, image_size: tuple[int, int]
) -> EncodedMasks:
    """Strings and areas of masks given in processing ``order``, returned in input order."""
    strings = compress_counts(counts, lengths)
    starts = np.cumsum(lengths) - lengths
    index_in_mask = np.arange(counts.shape[0]) - np.repeat(starts, lengths)
    ones = np.where(index_in_mask % 2 == 1, counts, 0)
    areas_processed = np.add.reduceat(ones, starts) if counts.shape[0] else np.zeros(0)
    height, width = int(image_size[0]), int(image_size[1])
    masks: list[Rle | None] = [None] * len(strings)
    for i, s, start, length in zip(
        order.tolist(), strings, starts.tolist(), lengths.tolist(), strict=True
    ):
        masks[i] = Rle(height, width, s, counts[start : start + length])
    areas = np.zeros(len(strings), dtype=np.int64)
    areas[order] = areas_processed
    return EncodedMasks(masks=masks, areas=areas)  # type: ignore[arg-type]  # all filled


def _check(lowres: torch.Tensor, proto_windows: torch.Tensor, threshold: float) -> None:
    if lowres.dim() != 3:
        raise ValueError(f"lowres must be [N, ph, pw], got {tuple(lowres.shape)}")
    if tuple(proto_windows.shape) != (lowres.shape[0], 4):
        raise ValueError(f"proto_windows must be [N, 4], got {tuple(proto_windows.shape)}")
    if not threshold >= 0.0:
        raise ValueError("threshold must be >= 0: pixels outside a window are 0 and must be off")


def _intersect(windows: np.ndarray, crop: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Output windows cut to ``crop`` windows (clipped to the image); empty ones all zero."""
    crop = np.asarray(crop, dtype=np.int64).reshape(-1, 4)
    limit = np.array([image_size[1], image_size[0]] * 2)
    crop = np.clip(crop, 0, limit)
    out = np.concatenate(
        [np.maximum(windows[:, :2], crop[:, :2]), np.minimum(windows[:, 2:], crop[:, 2:])], axis=1
    )
    out[(out[:, 2] <= out[:, 0]) | (out[:, 3] <= out[:, 1])] = 0
    return out


def encode_masks_with_areas(
    lowres: torch.Tensor,
    proto_windows: torch.Tensor,
    image_size: tuple[int, int],
    threshold: float = 0.5,
    policy: StagePolicy | None = None,
    pixel_windows: torch.Tensor | None = None,
) -> EncodedMasks:
    """:func:`encode_masks`, also returning each mask's pixel area (int64 [N]).

    ``pixel_windows`` ([N, 4] int (x0, y0, x1, y1), half-open, output pixels), when given,
    turns off every pixel outside it (a crop after the upsampling).
    """
    _check(lowres, proto_windows, threshold)
    height, width = int(image_size[0]), int(image_size[1])
    n, ph, pw = lowres.shape
    if n == 0:
        return EncodedMasks(masks=[], areas=np.zeros(0, dtype=np.int64))
    policy = policy or default_policy(lowres.device)
    windows = output_windows(proto_windows.cpu().numpy(), (ph, pw), (height, width))
    if pixel_windows is not None:
        windows = _intersect(windows, pixel_windows.cpu().numpy(), (height, width))
    nonempty = windows[:, 2] > windows[:, 0]
    groups = plan_groups(windows, np.flatnonzero(nonempty), policy.slack, policy.max_pixels)
    order = np.concatenate([*groups, np.flatnonzero(~nonempty)])
    with _stage_scope(policy.cpu_threads, lowres.device):
        rows = lowres.to(torch.float32).reshape(n * ph, pw)
        mask_ids, positions = [], []
        masks_seen = 0
        for members in groups:
            plan = make_group_plan(members, windows, (ph, pw), (height, width))
            bits = upsample_group(rows, plan, threshold)
            meta = np.stack([plan.row_base, plan.row_member + masks_seen, plan.row_width])
            row_base, row_mask, row_width = torch.from_numpy(meta).to(lowres.device)
            mask, position = row_transitions(bits, row_base, row_mask, height, row_width)
            mask_ids.append(mask)
            positions.append(position)
            masks_seen += members.shape[0]
        counts, lengths = _runs(mask_ids, positions, n, height * width, lowres.device)
    return _as_rles(counts, lengths, order, (height, width))


def _runs(
    mask_ids: list[torch.Tensor],
    positions: list[torch.Tensor],
    n_masks: int,
    total: int,
    device: torch.device,
) -> tuple[np.ndarray, np.ndarray]:
    """Clean and concatenate transitions, then run lengths on the device -> host."""
    if total >= 1 << 31:
        raise ValueError("images of 2**31 pixels or more are not supported")
    empty = torch.zeros(0, dtype=torch.int64, device=device)
    mask = torch.cat(mask_ids) if mask_ids else empty
    position = torch.cat(positions) if positions else empty
    mask, position = sort_and_clean(mask, position, total)
    return fetch_runs(run_lengths(mask, position, n_masks, total), n_masks)


def encode_masks(
    lowres: torch.Tensor,
    proto_windows: torch.Tensor,
    image_size: tuple[int, int],
    threshold: float = 0.5,
    policy: StagePolicy | None = None,
) -> list[RLE]:
    """COCO compressed RLEs of the thresholded bilinear upsampling of cropped masks.

    Equal to ``pycocotools.mask.encode`` of :func:`full_masks` (bit-exact on the CPU for
    outputs with ``H + W > 128``), without materialising any full-size mask.

    Args:
        lowres: [N, ph, pw] float soft masks, exactly zero outside ``proto_windows``.
        proto_windows: [N, 4] int (c0, r0, c1, r1), half-open, in prototype pixels.
        image_size: (H, W) of the output masks.
        threshold: a pixel is on when its upsampled value is strictly above this (>= 0).
        policy: execution knobs; by default chosen from ``lowres.device``.

    Returns:
        ``[{"size": [H, W], "counts": str}, ...]`` in input order.
    """
    return encode_masks_with_areas(lowres, proto_windows, image_size, threshold, policy).rles


def encode_box_masks_with_areas(
    box_masks: torch.Tensor,
    boxes: torch.Tensor,
    image_size: tuple[int, int],
    threshold: float = 0.5,
    policy: StagePolicy | None = None,
) -> EncodedMasks:
    """COCO RLEs (and areas) of M×M box masks pasted into their boxes, box-local.

    Equal (up to pixels within rounding of the threshold) to ``pycocotools.mask.encode``
    of torchvision's ``paste_masks_in_image(box_masks[:, None], boxes, image_size) >
    threshold``, without any full-size canvas: only each box's window is resized.

    Args:
        box_masks: [N, M, M] mask probabilities.
        boxes: [N, 4] float (x1, y1, x2, y2) in image pixels.
        image_size: (H, W).
        threshold: strict, >= 0.
        policy: execution knobs; by default chosen from ``box_masks.device``.
    """
    if box_masks.dim() != 3 or box_masks.shape[1] != box_masks.shape[2]:
        raise ValueError(f"box_masks must be [N, M, M], got {tuple(box_masks.shape)}")
    if tuple(boxes.shape) != (box_masks.shape[0], 4):
        raise ValueError(f"boxes must be [N, 4], got {tuple(boxes.shape)}")
    if not threshold >= 0.0:
        raise ValueError("threshold must be >= 0: pixels outside a box are 0 and must be off")
    n = box_masks.shape[0]
    height, width = int(image_size[0]), int(image_size[1])
    if n == 0:
        return EncodedMasks(masks=[], areas=np.zeros(0, dtype=np.int64))
    policy = policy or default_policy(box_masks.device)
    device = box_masks.device
    plan = paste_windows(boxes, int(box_masks.shape[-1]), (height, width))
    groups = plan_paste_groups(plan.windows, policy.slack, policy.max_pixels)
    grouped = np.concatenate(groups) if groups else np.zeros(0, dtype=np.int64)
    order = np.concatenate([grouped, np.setdiff1d(np.arange(n), grouped)])
    with _stage_scope(policy.cpu_threads, device):
        padded = pad_masks(box_masks)
        mask_ids, positions = [], []
        seen = 0
        for members in groups:
            win = plan.windows[members]
            shape = (int((win[:, 3] - win[:, 1]).max()), int((win[:, 2] - win[:, 0]).max()))
            table = torch.from_numpy(np.concatenate([plan.boxes[members], win])).to(device)
            index = torch.from_numpy(members).to(device)
            group_boxes, group_windows = table[: len(members)], table[len(members) :]
            bits = paste_group(padded[index], group_boxes, group_windows, shape, threshold)
            local = torch.arange(len(members), device=device) + seen
            rows, row_base, row_mask = group_rows(bits, group_windows, local, height)
            mask, position = row_transitions(rows, row_base, row_mask, height)
            mask_ids.append(mask)
            positions.append(position)
            seen += len(members)
        counts, lengths = _runs(mask_ids, positions, n, height * width, device)
    return _as_rles(counts, lengths, order, (height, width))


def encode_detections(detections: Detections, policy: StagePolicy | None = None) -> EncodedMasks:
    """RLEs and areas of a model's :class:`Detections`, whichever mask form they carry."""
    if detections.box_masks is not None:
        return encode_box_masks_with_areas(
            detections.box_masks,
            detections.boxes,
            detections.image_size,
            detections.mask_threshold,
            policy,
        )
    return encode_masks_with_areas(
        detections.lowres_masks,
        detections.proto_windows,
        detections.image_size,
        detections.mask_threshold,
        policy,
        detections.pixel_windows,
    )


def mask_areas(rles: list[RLE]) -> np.ndarray:
    """Pixel areas of COCO RLEs from their strings (int64 [N]); like ``pycocotools.area``."""
    return np.array(
        [int(decompress_counts(str(r["counts"]))[1::2].sum()) for r in rles], dtype=np.int64
    )


def encode_full_masks(masks: torch.Tensor, policy: StagePolicy | None = None) -> list[RLE]:
    """COCO compressed RLEs of already full-size masks [N, H, W] (bool or 0/1, any device).

    Same run extraction as :func:`encode_masks`, each mask being one full-image window.
    """
    if masks.dim() != 3:
        raise ValueError(f"masks must be [N, H, W], got {tuple(masks.shape)}")
    n, height, width = masks.shape
    if n == 0:
        return []
    policy = policy or default_policy(masks.device)
    with _stage_scope(policy.cpu_threads, masks.device):
        bits, row_base, row_mask = full_mask_rows(masks != 0)
        mask, position = row_transitions(bits, row_base, row_mask, height)
        counts, lengths = _runs([mask], [position], n, height * width, masks.device)
    return _as_rles(counts, lengths, np.arange(n), (height, width)).rles


def full_masks(
    lowres: torch.Tensor, image_size: tuple[int, int], threshold: float = 0.5
) -> torch.Tensor:
    """The reference full-size masks (the model side's own upsample-then-threshold path).

    Materialises [N, H, W]; meant for tests, overlays and benchmarks, not the hot path.
    """
    return upsample_masks(lowres, (int(image_size[0]), int(image_size[1])), threshold)


def full_box_masks(
    box_masks: torch.Tensor,
    boxes: torch.Tensor,
    image_size: tuple[int, int],
    threshold: float = 0.5,
) -> torch.Tensor:
    """The reference full-size masks of box masks: torchvision's own paste, thresholded.

    Materialises [N, H, W]; meant for tests, overlays and benchmarks, not the hot path.
    """
    from torchvision.models.detection.roi_heads import paste_masks_in_image

    size = (int(image_size[0]), int(image_size[1]))
    if box_masks.shape[0] == 0:
        return torch.zeros((0, *size), dtype=torch.bool, device=box_masks.device)
    pasted = paste_masks_in_image(box_masks[:, None].float(), boxes.float(), size)
    return pasted[:, 0] > threshold


def detection_masks(detections: Detections) -> torch.Tensor:
    """Reference full-size bool masks [N, H, W] of :class:`Detections` of either form."""
    if detections.box_masks is not None:
        return full_box_masks(
            detections.box_masks, detections.boxes, detections.image_size, detections.mask_threshold
        )
    masks = full_masks(detections.lowres_masks, detections.image_size, detections.mask_threshold)
    if detections.pixel_windows is not None:
        height, width = masks.shape[1], masks.shape[2]
        win = detections.pixel_windows.to(masks.device)[:, :, None]
        cols = torch.arange(width, device=masks.device)[None, None, :]
        rows = torch.arange(height, device=masks.device)[None, :, None]
        masks = masks & (cols >= win[:, 0:1]) & (cols < win[:, 2:3])
        masks = masks & (rows >= win[:, 1:2]) & (rows < win[:, 3:4])
    return masks
