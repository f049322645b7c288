"""The letterbox geometry against numbers worked out by hand from yoloseg.md §2."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskserve.models.yoloseg.preprocess import PAD_VALUE, letterbox_geometry, letterbox_images

# (image H, W), (input H, W) -> (gain, content_w, content_h, pad_left, pad_top)
HAND_COMPUTED = [
    # r = min(320/480, 320/640) = 0.5; 320×240; dh = 80/2 = 40
    ((480, 640), (320, 320), (0.5, 320, 240, 0, 40)),
    # r = 320/300; w = round(213.33) = 213; dw = 107/2 = 53.5 -> round(53.4) = 53
    ((300, 200), (320, 320), (320 / 300, 213, 320, 53, 0)),
    ((640, 640), (640, 640), (1.0, 640, 640, 0, 0)),
    # r = 0.5; 640×360; dh = 280/2 = 140
    ((720, 1280), (640, 640), (0.5, 640, 360, 0, 140)),
    # r = 1.28; h = round(426.24) = 426; dh = 214/2 = 107 -> round(106.9) = 107
    ((333, 500), (640, 640), (1.28, 640, 426, 0, 107)),
    # r = 320/101; w = round(316.83) = 317; dw = 1.5 -> round(1.4) = 1 (right border 2)
    ((101, 100), (320, 320), (320 / 101, 317, 320, 1, 0)),
    # scale-up of a small image: r = 3.2; 64×32; dh = 16
    ((10, 20), (64, 64), (3.2, 64, 32, 0, 16)),
    # non-square input: r = min(384/480, 640/480) = 0.8; 384×384; dw = 256/2 = 128
    ((480, 480), (384, 640), (0.8, 384, 384, 128, 0)),
]


@pytest.mark.parametrize(("image_hw", "input_hw", "expected"), HAND_COMPUTED)
def test_letterbox_geometry_matches_hand_computed_values(
    image_hw: tuple[int, int], input_hw: tuple[int, int], expected: tuple
) -> None:
    box = letterbox_geometry(image_hw, input_hw)
    gain, content_w, content_h, pad_left, pad_top = expected
    assert box.gain == pytest.approx(gain)
    assert (box.content_w, box.content_h) == (content_w, content_h)
    assert (box.pad_left, box.pad_top) == (pad_left, pad_top)


def test_letterboxed_batch_has_pad_114_around_the_resized_content() -> None:
    images = [np.full((300, 200, 3), 7, np.uint8), np.full((480, 640, 3), 250, np.uint8)]
    batch, boxes = letterbox_images(images, (320, 320))
    assert batch.shape == (2, 3, 320, 320) and batch.dtype == torch.float32
    pad, first, second = PAD_VALUE / 255, 7 / 255, 250 / 255
    assert torch.allclose(batch[0, :, :, :53], torch.tensor(pad))
    assert torch.allclose(batch[0, :, :, 53:266], torch.tensor(first))
    assert torch.allclose(batch[0, :, :, 266:], torch.tensor(pad))
    assert torch.allclose(batch[1, :, :40], torch.tensor(pad))
    assert torch.allclose(batch[1, :, 40:280], torch.tensor(second))
    assert torch.allclose(batch[1, :, 280:], torch.tensor(pad))
    assert [b.pad_left for b in boxes] == [53, 0]


def test_channels_stay_rgb_in_order() -> None:
    image = np.zeros((32, 32, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 10, 20, 30
    batch, _ = letterbox_images([image], (32, 32))
    assert (batch[0, :, 0, 0] * 255).round().tolist() == [10, 20, 30]


def test_resize_is_bit_exact_with_cv2_inter_linear() -> None:
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    for shape in [(300, 200), (480, 640), (97, 131), (640, 640), (90, 70), (3, 5), (333, 251)]:
        image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        batch, (box,) = letterbox_images([image], (320, 320))
        ours = (batch[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        resized = cv2.resize(image, (box.content_w, box.content_h), interpolation=cv2.INTER_LINEAR)
        bottom = 320 - box.pad_top - box.content_h
        right = 320 - box.pad_left - box.content_w
        theirs = cv2.copyMakeBorder(
            resized,
            box.pad_top,
            bottom,
            box.pad_left,
            right,
            cv2.BORDER_CONSTANT,
            value=(PAD_VALUE,) * 3,
        )
        diff = np.abs(ours.astype(int) - theirs.astype(int))
        assert diff.max() == 0, shape


def test_rejects_non_rgb_images() -> None:
    with pytest.raises(ValueError, match="RGB"):
        letterbox_images([np.zeros((10, 10), np.uint8)], (32, 32))
