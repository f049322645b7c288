"""Properties of the on-the-fly synthetic sample generator."""

from __future__ import annotations

import numpy as np
import pytest

from maskserve.models.synthetic import SHAPE_CLASSES, Sample, generate_sample, make_batch
from maskserve.models.synthetic import generator as gen_module
from maskserve.models.synthetic.paint import background_photo
from maskserve.models.synthetic.shapes import Stamp

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

HEIGHT, WIDTH = 120, 168  # not square, so a swapped H/W shows up


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    rng = np.random.default_rng(2024)
    return [generate_sample(rng, HEIGHT, WIDTH, max_objects=8) for _ in range(40)]


def test_shapes_and_dtypes(samples: list[Sample]) -> None:
    for s in samples:
        n = len(s.class_ids)
        assert 1 <= n <= 8
        assert s.image.shape == (HEIGHT, WIDTH, 3) and s.image.dtype == np.uint8
        assert s.masks.shape == (n, HEIGHT, WIDTH) and s.masks.dtype == np.bool_
        assert s.class_ids.shape == (n,) and s.class_ids.dtype == np.int64
        assert s.boxes.shape == (n, 4) and s.boxes.dtype == np.float32
        assert np.all((s.class_ids >= 0) & (s.class_ids < len(SHAPE_CLASSES)))


def test_masks_disjoint_and_big_enough(samples: list[Sample]) -> None:
    for s in samples:
        assert s.masks.sum(axis=0).max() <= 1, "occluded pixels must leave earlier masks"
        assert s.masks.reshape(len(s.masks), -1).sum(axis=1).min() >= 30


def test_occlusion_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each instance is its painted stamp minus every later stamp, and keeps enough."""
    stamps: list[Stamp] = []
    real_paint = gen_module._paint

    def recording_paint(rng: np.random.Generator, image: np.ndarray, stamp: Stamp) -> None:
        stamps.append(stamp)
        real_paint(rng, image, stamp)

    monkeypatch.setattr(gen_module, "_paint", recording_paint)
    rng = np.random.default_rng(31)
    occluded = 0
    for _ in range(30):
        stamps.clear()
        s = generate_sample(rng, HEIGHT, WIDTH)
        drawn = np.zeros((len(stamps), HEIGHT, WIDTH), dtype=bool)
        for k, st in enumerate(stamps):
            drawn[k, st.y0 : st.y1, st.x0 : st.x1] = st.mask
        assert len(stamps) == len(s.masks)
        for k in range(len(stamps)):
            expected = drawn[k] & ~drawn[k + 1 :].any(axis=0)
            np.testing.assert_array_equal(s.masks[k], expected)
            assert s.masks[k].sum() >= 0.4 * drawn[k].sum()
            occluded += bool(s.masks[k].sum() < drawn[k].sum())
    assert occluded >= 5, "shapes should overlap now and then"


def test_boxes_tight_and_exclusive(samples: list[Sample]) -> None:
    for s in samples:
        for mask, (x1, y1, x2, y2) in zip(s.masks, s.boxes.astype(int), strict=True):
            assert 0 <= x1 < x2 <= WIDTH and 0 <= y1 < y2 <= HEIGHT
            inside = np.zeros_like(mask)
            inside[y1:y2, x1:x2] = True
            assert not (mask & ~inside).any(), "mask pixel outside its box"
            # every edge of the box touches the mask (x2/y2 are last index + 1)
            assert mask[y1].any() and mask[y2 - 1].any()
            assert mask[:, x1].any() and mask[:, x2 - 1].any()


def test_deterministic_given_seed() -> None:
    a = generate_sample(np.random.default_rng(5), 96, 96)
    b = generate_sample(np.random.default_rng(5), 96, 96)
    c = generate_sample(np.random.default_rng(6), 96, 96)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.masks, b.masks)
    np.testing.assert_array_equal(a.class_ids, b.class_ids)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    assert not np.array_equal(a.image, c.image)


def test_all_classes_and_a_range_of_sizes() -> None:
    rng = np.random.default_rng(11)
    batch = make_batch(rng, 50, 320, 320)
    assert len(batch) == 50
    classes = set(np.concatenate([s.class_ids for s in batch]).tolist())
    assert classes == set(range(len(SHAPE_CLASSES)))
    extents = np.concatenate(
        [np.maximum(s.boxes[:, 2] - s.boxes[:, 0], s.boxes[:, 3] - s.boxes[:, 1]) for s in batch]
    )
    assert extents.min() <= 16, "small objects (~12 px) must occur"
    assert extents.max() >= 120, "objects up to half the shorter side must occur"
    counts = [len(s.class_ids) for s in batch]
    assert min(counts) == 1 and max(counts) >= 7


def test_max_objects_one() -> None:
    rng = np.random.default_rng(0)
    assert all(len(s.class_ids) == 1 for s in make_batch(rng, 10, 64, 64, max_objects=1))


def test_invalid_arguments() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        generate_sample(rng, 64, 64, max_objects=0)
    with pytest.raises(ValueError):
        generate_sample(rng, 16, 64)


def test_masks_are_exactly_the_painted_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a black background, no distractors and one unique solid colour per painted
    shape, each instance's mask must be exactly the pixels showing its colour."""
    painted: list[np.ndarray] = []

    def unique_fill(rng: np.random.Generator, h: int, w: int, avoid: np.ndarray) -> np.ndarray:
        colour = np.array([len(painted) + 1, 200, 255 - len(painted)], dtype=np.uint8)
        painted.append(colour)
        return np.broadcast_to(colour, (h, w, 3))

    monkeypatch.setattr(gen_module, "shape_fill", unique_fill)
    monkeypatch.setattr(gen_module, "background", lambda rng, h, w: np.zeros((h, w, 3), np.uint8))
    monkeypatch.setattr(gen_module, "add_distractors", lambda rng, image: None)
    rng = np.random.default_rng(77)
    for _ in range(15):
        painted.clear()
        s = generate_sample(rng, 100, 140)
        assert len(painted) == len(s.masks), "every painted shape must be an instance"
        for mask, colour in zip(s.masks, painted, strict=True):
            np.testing.assert_array_equal((s.image == colour).all(axis=-1), mask)
        assert not (s.image.any(axis=-1) & ~s.masks.any(axis=0)).any()


def test_background_photo_is_bundled() -> None:
    photo = background_photo()
    assert photo.shape == (400, 600, 3) and photo.dtype == np.uint8
    assert not photo.flags.writeable
    assert background_photo() is photo
