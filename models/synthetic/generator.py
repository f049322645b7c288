"""On-the-fly synthetic instance-segmentation samples (shapes on cluttered backgrounds)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maskserve.models.synthetic.paint import add_distractors, background, shape_fill
from maskserve.models.synthetic.shapes import Stamp, random_stamp

MIN_VISIBLE_PIXELS = 30
MIN_VISIBLE_FRACTION = 0.4
MIN_SIZE_PX = 12.0
_ATTEMPTS_PER_OBJECT = 4
_MAX_ATTEMPTS_FOR_FIRST = 100


@dataclass
class Sample:
    """One synthetic image with its ground truth.

    Attributes:
        image: [H, W, 3] uint8 RGB.
        masks: [N, H, W] bool, the visible pixels of each instance after occlusion;
            pairwise disjoint, each exactly the pixels painted by that shape.
        class_ids: [N] int64 indices into ``SHAPE_CLASSES``.
        boxes: [N, 4] float32 (x1, y1, x2, y2) tight around the visible mask, x2/y2
            exclusive (last column/row + 1).
    """

    image: np.ndarray
    masks: np.ndarray
    class_ids: np.ndarray
    boxes: np.ndarray


@dataclass
class _Instance:
    class_id: int
    mask: np.ndarray
    drawn: int
    visible: int


def _occlusion_ok(stamp: Stamp, instances: list[_Instance]) -> bool:
    """Whether painting ``stamp`` on top leaves every earlier instance visible enough."""
    for inst in instances:
        covered = np.count_nonzero(inst.mask[stamp.y0 : stamp.y1, stamp.x0 : stamp.x1] & stamp.mask)
        left = inst.visible - covered
        if left < MIN_VISIBLE_PIXELS or left < MIN_VISIBLE_FRACTION * inst.drawn:
            return False
    return True


def _paint(rng: np.random.Generator, image: np.ndarray, stamp: Stamp) -> None:
    window = image[stamp.y0 : stamp.y1, stamp.x0 : stamp.x1]
    under = window[stamp.mask].mean(axis=0)
    fill = shape_fill(rng, stamp.mask.shape[0], stamp.mask.shape[1], avoid=under)
    window[stamp.mask] = fill[stamp.mask]


def _place(
    rng: np.random.Generator, image: np.ndarray, instances: list[_Instance], max_size: float
) -> None:
    """Tries one random shape; paints it and records it only if the occlusion rules hold.

    A shape that would push an earlier instance below the visibility limits is not
    painted at all (rather than painted and the earlier one dropped), so every painted
    shape in the image is labelled.
    """
    height, width = image.shape[:2]
    stamp = random_stamp(rng, height, width, MIN_SIZE_PX, max_size)
    if stamp is None:
        return
    drawn = int(np.count_nonzero(stamp.mask))
    if drawn < MIN_VISIBLE_PIXELS or not _occlusion_ok(stamp, instances):
        return
    _paint(rng, image, stamp)
    for inst in instances:
        window = inst.mask[stamp.y0 : stamp.y1, stamp.x0 : stamp.x1]
        inst.visible -= int(np.count_nonzero(window & stamp.mask))
        window &= ~stamp.mask
    full = np.zeros((height, width), dtype=bool)
    full[stamp.y0 : stamp.y1, stamp.x0 : stamp.x1] = stamp.mask
    instances.append(_Instance(stamp.class_id, full, drawn, drawn))


def _tight_boxes(masks: np.ndarray) -> np.ndarray:
    boxes = np.zeros((masks.shape[0], 4), dtype=np.float32)
    for i, mask in enumerate(masks):
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        boxes[i] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    return boxes


def generate_sample(
    rng: np.random.Generator, height: int, width: int, max_objects: int = 8
) -> Sample:
    """A random image with 1..max_objects occluding shapes; deterministic given ``rng``.

    Shape sizes run from 12 px to half the shorter image side. Later shapes are drawn
    on top and earlier masks lose the covered pixels; no instance ends up with fewer
    than 30 visible pixels or less than 40 % of the pixels it had when drawn.
    """
    if max_objects < 1:
        raise ValueError(f"max_objects must be >= 1, got {max_objects}")
    if min(height, width) < 2 * MIN_SIZE_PX:
        raise ValueError(f"image {height}x{width} too small (min side {2 * MIN_SIZE_PX:g})")
    image = background(rng, height, width)
    add_distractors(rng, image)
    target = int(rng.integers(1, max_objects + 1))
    max_size = min(height, width) / 2.0
    instances: list[_Instance] = []
    for _ in range(target * _ATTEMPTS_PER_OBJECT):
        if len(instances) == target:
            break
        _place(rng, image, instances, max_size)
    for _ in range(_MAX_ATTEMPTS_FOR_FIRST):
        if instances:
            break
        _place(rng, image, instances, max_size)
    if not instances:
        raise RuntimeError("could not place a single shape")
    masks = np.stack([inst.mask for inst in instances])
    return Sample(
        image=image,
        masks=masks,
        class_ids=np.array([inst.class_id for inst in instances], dtype=np.int64),
        boxes=_tight_boxes(masks),
    )


def make_batch(
    rng: np.random.Generator, batch_size: int, height: int, width: int, max_objects: int = 8
) -> list[Sample]:
    """``batch_size`` independent samples drawn in sequence from ``rng``."""
    return [generate_sample(rng, height, width, max_objects) for _ in range(batch_size)]
