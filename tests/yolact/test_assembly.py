"""Mask assembly on hand-built prototypes and coefficients."""

import torch

from maskserve.models.yolact.assemble import assemble_masks, boxes_to_pixels, upsample_masks


def halves_proto() -> torch.Tensor:
    """6×8 prototypes: channel 0 is 1 on the left half, channel 1 on the right half."""
    proto = torch.zeros(1, 6, 8, 2)
    proto[0, :, :4, 0] = 1.0
    proto[0, :, 4:, 1] = 1.0
    return proto


def test_matrix_product_sigmoid_and_crop_give_the_known_masks() -> None:
    coeffs = torch.tensor([[[10.0, -10.0], [-10.0, 10.0]]])
    boxes = torch.tensor([[[0.25, 0.0, 0.5, 0.5], [0.0, 0.0, 1.0, 1.0]]])
    masks, windows = assemble_masks(halves_proto(), coeffs, boxes)
    left = torch.zeros(6, 8, dtype=torch.bool)
    left[0:4, 1:4] = True  # crop cols 1..4 (x_lo = 2 − 1, x_hi = 4 + 1), rows 0..3
    right = torch.zeros(6, 8, dtype=torch.bool)
    right[:, 4:] = True
    assert torch.equal(masks[0, 0] > 0.5, left)
    assert torch.equal(masks[0, 1] > 0.5, right)
    assert torch.all(masks[0, 0, :, 5:] == 0) and torch.all(masks[0, 0, 4:] == 0)
    assert windows[0].tolist() == [[1, 0, 5, 4], [0, 0, 8, 6]]


def test_reversed_box_corners_crop_the_same_region() -> None:
    coeffs = torch.tensor([[[10.0, -10.0]]])
    straight, _ = assemble_masks(halves_proto(), coeffs, torch.tensor([[[0.25, 0.0, 0.5, 0.5]]]))
    flipped, _ = assemble_masks(halves_proto(), coeffs, torch.tensor([[[0.5, 0.5, 0.25, 0.0]]]))
    assert torch.equal(straight, flipped)


def test_upsampling_blends_crop_zeros_before_the_threshold() -> None:
    coeffs = torch.tensor([[[10.0, -10.0]]])
    masks, _ = assemble_masks(halves_proto(), coeffs, torch.tensor([[[0.25, 0.0, 0.5, 0.5]]]))
    full = upsample_masks(masks[0], (12, 16))
    expected = torch.zeros(1, 12, 16, dtype=torch.bool)
    expected[0, 0:8, 2:8] = True  # ×2 bilinear: a 0.25/0.75 blend at every edge
    assert torch.equal(full, expected)


def test_batched_images_use_their_own_prototypes() -> None:
    proto = torch.cat([halves_proto(), halves_proto().flip(2)])
    coeffs = torch.tensor([[[10.0, -10.0]], [[10.0, -10.0]]])
    boxes = torch.tensor([[[0.0, 0.0, 1.0, 1.0]], [[0.0, 0.0, 1.0, 1.0]]])
    masks, _ = assemble_masks(proto, coeffs, boxes)
    assert torch.equal(masks[0, 0] > 0.5, ~(masks[1, 0] > 0.5))


def test_boxes_to_pixels_truncates_and_clamps_like_the_reference() -> None:
    boxes = torch.tensor([[0.1, 0.2, 0.5, 0.9], [1.02, 0.1, 1.1, 0.3], [0.6, -0.2, 0.2, -0.01]])
    pixels = boxes_to_pixels(boxes, (100, 600))
    assert pixels.tolist() == [[60, 20, 300, 90], [612, 10, 600, 30], [120, 0, 360, -1]]
