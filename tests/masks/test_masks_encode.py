"""encode_masks / encode_full_masks against F.interpolate + pycocotools (the reference)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch

from maskserve.masks import (
    StagePolicy,
    encode_detections,
    encode_full_masks,
    encode_masks,
    encode_masks_with_areas,
    full_masks,
    mask_areas,
    rle_torch,
)
from maskserve.masks.encode import CUDA_POLICY
from maskserve.masks.rle_string import decompress_counts
from maskserve.models.types import Detections

Inputs = Callable[..., tuple[torch.Tensor, torch.Tensor]]
Reference = Callable[[torch.Tensor], list[dict]]

# (ph, pw, H, W) with H + W > 128: PyTorch's generic CPU kernel, reproduced bit for bit.
EXACT_CASES = [
    (138, 138, 480, 640),
    (40, 56, 301, 199),
    (138, 138, 150, 97),
    (138, 138, 100, 90),
    (64, 64, 64, 128),
    (30, 20, 1, 200),
    (20, 30, 333, 1),
]
# H + W <= 128: PyTorch switches to a channels-last kernel with another summation order.
SMALL_CASES = [(30, 40, 37, 53), (138, 138, 50, 60), (10, 10, 1, 1), (5, 7, 20, 30)]


def assert_valid(rles: list[dict], height: int, width: int) -> None:
    for rle in rles:
        assert rle["size"] == [height, width]
        assert isinstance(rle["counts"], str)
        assert int(decompress_counts(rle["counts"]).sum()) == height * width


@pytest.mark.parametrize("style", ["noise", "smooth", "near"])
@pytest.mark.parametrize(("ph", "pw", "height", "width"), EXACT_CASES)
def test_byte_identical_to_reference(
    make_inputs: Inputs, reference: Reference, style: str, ph: int, pw: int, height: int, width: int
) -> None:
    lowres, windows = make_inputs(24, ph, pw, style)
    ours = encode_masks(lowres, windows, (height, width))
    assert_valid(ours, height, width)
    assert ours == reference(full_masks(lowres, (height, width)))


def test_full_hd_windows(make_inputs: Inputs, reference: Reference) -> None:
    lowres, windows = make_inputs(6, 138, 138, "smooth")
    ours = encode_masks(lowres, windows, (1080, 1920))
    assert ours == reference(full_masks(lowres, (1080, 1920)))


@pytest.mark.parametrize(("ph", "pw", "height", "width"), SMALL_CASES)
def test_small_outputs_agree_up_to_rounding(
    make_inputs: Inputs, reference: Reference, ph: int, pw: int, height: int, width: int
) -> None:
    """Realistic values: identical.  Values within 1e-6 of the threshold: few pixels."""
    lowres, windows = make_inputs(40, ph, pw, "smooth")
    full = full_masks(lowres, (height, width))
    assert encode_masks(lowres, windows, (height, width)) == reference(full)

    lowres, windows = make_inputs(40, ph, pw, "near")
    full = full_masks(lowres, (height, width))
    ours = encode_masks(lowres, windows, (height, width))
    assert_valid(ours, height, width)
    decoded = torch.from_numpy(mask_utils.decode(ours)).permute(2, 0, 1).bool()
    assert (decoded != full).float().mean() < 0.01
    inter = (decoded & full).sum((1, 2)).float()
    union = (decoded | full).sum((1, 2)).float()
    big = union >= 200
    assert torch.all(inter[big] / union[big] >= 0.95)


def test_runs_merging_across_columns_and_image_corners(reference: Reference) -> None:
    """Full-height windows (runs continue into the next column), first and last pixel on."""
    ph, pw, size = 20, 30, (150, 170)
    lowres = torch.zeros(4, ph, pw)
    lowres[0] = 1.0  # the whole image
    lowres[1, :, 10:20] = 0.9  # full-height band
    lowres[2, :3, :3] = 0.8  # top-left corner: first pixel on, leading empty run
    lowres[3, -2:, -4:] = 0.8  # bottom-right corner: last pixel on
    windows = torch.tensor(
        [[0, 0, pw, ph], [10, 0, 20, ph], [0, 0, 3, 3], [pw - 4, ph - 2, pw, ph]]
    )
    ours = encode_masks(lowres, windows, size)
    assert ours == reference(full_masks(lowres, size))
    assert ours[0]["counts"] == mask_utils.encode(np.ones((*size, 1), np.uint8, order="F"))[0][
        "counts"
    ].decode("ascii")
    assert decompress_counts(ours[2]["counts"])[0] == 0
    assert decompress_counts(ours[3]["counts"]).shape[0] % 2 == 0


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.7])
def test_other_thresholds(make_inputs: Inputs, reference: Reference, threshold: float) -> None:
    lowres, windows = make_inputs(16, 69, 69, "smooth")
    ours = encode_masks(lowres, windows, (240, 320), threshold)
    assert ours == reference(full_masks(lowres, (240, 320), threshold))


def test_policies_and_order_do_not_change_results(make_inputs: Inputs) -> None:
    lowres, windows = make_inputs(30, 69, 69, "smooth")
    size = (240, 320)
    base = encode_masks(lowres, windows, size)
    for policy in [CUDA_POLICY, StagePolicy(slack=1.0, max_pixels=1), StagePolicy(cpu_threads=2)]:
        assert encode_masks(lowres, windows, size, policy=policy) == base
    perm = torch.randperm(30, generator=torch.Generator().manual_seed(0))
    shuffled = encode_masks(lowres[perm], windows[perm], size)
    assert shuffled == [base[i] for i in perm.tolist()]


def test_torch_nonzero_path(make_inputs: Inputs, monkeypatch: pytest.MonkeyPatch) -> None:
    """The branch used on accelerators (torch.nonzero) gives the same strings."""
    lowres, windows = make_inputs(12, 40, 40, "noise")
    base = encode_masks(lowres, windows, (150, 170))
    monkeypatch.setattr(rle_torch, "_nonzero_2d", lambda t: t.nonzero(as_tuple=True))
    assert encode_masks(lowres, windows, (150, 170)) == base


def test_areas(make_inputs: Inputs) -> None:
    lowres, windows = make_inputs(20, 50, 50, "smooth")
    encoded = encode_masks_with_areas(lowres, windows, (200, 300))
    expected = mask_utils.area(encoded.rles)
    np.testing.assert_array_equal(encoded.areas, expected)
    np.testing.assert_array_equal(mask_areas(encoded.rles), expected)
    full = full_masks(lowres, (200, 300))
    np.testing.assert_array_equal(encoded.areas, full.sum((1, 2)).numpy())


def test_detections_and_autograd_inputs(make_inputs: Inputs, reference: Reference) -> None:
    lowres, windows = make_inputs(8, 69, 69, "smooth")
    n = lowres.shape[0]
    detections = Detections(
        class_ids=torch.zeros(n, dtype=torch.int64),
        scores=torch.ones(n),
        boxes=torch.zeros(n, 4),
        lowres_masks=lowres.clone().requires_grad_(True),
        proto_windows=windows,
        image_size=(240, 320),
        class_names=("thing",),
        mask_threshold=0.4,
    )
    encoded = encode_detections(detections)
    assert encoded.rles == reference(full_masks(lowres, (240, 320), 0.4))


def test_threads_restored(make_inputs: Inputs) -> None:
    lowres, windows = make_inputs(4, 30, 30, "smooth")
    before = torch.get_num_threads()
    encode_masks(lowres, windows, (120, 100), policy=StagePolicy(cpu_threads=before + 1))
    assert torch.get_num_threads() == before


def test_no_detections() -> None:
    lowres = torch.zeros(0, 138, 138)
    windows = torch.zeros(0, 4, dtype=torch.int64)
    assert encode_masks(lowres, windows, (480, 640)) == []
    assert encode_masks_with_areas(lowres, windows, (480, 640)).areas.shape == (0,)
    assert full_masks(lowres, (480, 640)).shape == (0, 480, 640)
    assert encode_full_masks(torch.zeros(0, 480, 640, dtype=torch.bool)) == []


def test_invalid_arguments() -> None:
    lowres = torch.zeros(2, 10, 10)
    windows = torch.zeros(2, 4, dtype=torch.int64)
    with pytest.raises(ValueError):
        encode_masks(lowres, windows, (20, 20), threshold=-0.1)
    with pytest.raises(ValueError):
        encode_masks(lowres, windows[:1], (20, 20))
    with pytest.raises(ValueError):
        encode_masks(lowres[0], windows, (20, 20))
    with pytest.raises(ValueError):
        encode_full_masks(torch.zeros(3, 3, dtype=torch.bool))


def _full_mask_cases(rng: np.random.Generator) -> list[torch.Tensor]:
    cases = []
    for height, width in [(1, 1), (4, 5), (37, 53), (1, 64), (64, 1), (480, 640)]:
        masks = torch.from_numpy(rng.random((6, height, width)) < 0.5)
        masks[1] = False
        masks[2] = True
        masks[3, 0, 0], masks[3, -1, -1] = True, True
        masks[4] = False
        masks[4, :, width // 3 :] = True  # whole columns: runs merge across columns
        masks[5] = torch.from_numpy(rng.random((height, width)) < 0.01)
        cases.append(masks)
    return cases


def test_encode_full_masks(rng: np.random.Generator, reference: Reference) -> None:
    for masks in _full_mask_cases(rng):
        ours = encode_full_masks(masks)
        assert ours == reference(masks)
        assert encode_full_masks(masks.to(torch.uint8)) == ours


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cuda_reference(make_inputs: Inputs, reference: Reference) -> None:
    """On CUDA the reference is CUDA's own interpolate kernel; allow a few rounding flips."""
    lowres, windows = make_inputs(40, 138, 138, "smooth")
    device = torch.device("cuda")
    ours = encode_masks(lowres.to(device), windows.to(device), (480, 640))
    full = full_masks(lowres.to(device), (480, 640)).cpu()
    decoded = torch.from_numpy(mask_utils.decode(ours)).permute(2, 0, 1).bool()
    assert (decoded != full).sum() <= 40
    full_cuda = torch.from_numpy(np.random.default_rng(1).random((5, 90, 70)) < 0.5)
    assert encode_full_masks(full_cuda.to(device)) == reference(full_cuda)
