"""Taps, output windows and grouping of the windowed upsampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from maskserve.masks.window import axis_taps, output_windows, plan_groups

AXES = [(138, 480), (138, 640), (138, 1080), (138, 1920), (37, 300), (400, 130), (200, 200)]


@pytest.mark.parametrize(("in_size", "out_size"), AXES)
def test_axis_taps_are_pytorch_weights(in_size: int, out_size: int) -> None:
    """Interpolating a unit impulse at column c returns exactly c's weight per output x."""
    impulses = torch.eye(in_size, dtype=torch.float32).reshape(1, in_size, 1, in_size)
    weights = F.interpolate(impulses, size=(1, out_size), mode="bilinear", align_corners=False)
    weights = weights[0, :, 0, :].numpy()  # [in, out]
    taps = axis_taps(in_size, out_size)
    expected = np.zeros_like(weights)
    x = np.arange(out_size)
    same = taps.i0 == taps.i1
    expected[taps.i0, x] = np.where(same, taps.w0 + taps.w1, taps.w0)
    expected[taps.i1[~same], x[~same]] = taps.w1[~same]
    np.testing.assert_array_equal(weights, expected)
    assert np.all(np.diff(taps.i0) >= 0)
    assert np.all((taps.i1 - taps.i0 >= 0) & (taps.i1 - taps.i0 <= 1))


def _brute_force_window(c0: int, c1: int, in_size: int, out_size: int) -> tuple[int, int]:
    taps = axis_taps(in_size, out_size)
    hit = ((taps.i0 >= c0) & (taps.i0 < c1)) | ((taps.i1 >= c0) & (taps.i1 < c1))
    where = np.flatnonzero(hit)
    return (int(where[0]), int(where[-1]) + 1) if where.size else (0, 0)


@pytest.mark.parametrize(("in_size", "out_size"), AXES)
def test_output_windows_match_tap_definition(
    rng: np.random.Generator, in_size: int, out_size: int
) -> None:
    c0 = rng.integers(0, in_size, 200)
    c1 = np.minimum(c0 + rng.integers(1, in_size // 2 + 2, 200), in_size)
    c0[:3], c1[:3] = [0, in_size - 1, 5], [in_size, in_size, 6]
    proto = np.stack([c0, np.zeros_like(c0), c1, np.full_like(c0, 2)], 1)
    got = output_windows(proto, (2, in_size), (2, out_size))
    for (a, b), (x0, _, x1, _) in zip(zip(c0, c1, strict=True), got, strict=True):
        assert (x0, x1) == _brute_force_window(int(a), int(b), in_size, out_size)


def test_output_windows_contain_the_reference_support(rng: np.random.Generator) -> None:
    """All-ones windows: every non-zero reference pixel lies inside the computed window."""
    ph, pw, height, width = 23, 31, 150, 97
    windows = np.array([[0, 0, pw, ph], [3, 4, 4, 5], [30, 22, 31, 23], [5, 2, 20, 9]])
    lowres = torch.zeros(len(windows), ph, pw)
    for i, (c0, r0, c1, r1) in enumerate(windows.tolist()):
        lowres[i, r0:r1, c0:c1] = 1.0
    up = F.interpolate(lowres[None], size=(height, width), mode="bilinear")[0].numpy()
    boxes = output_windows(windows, (ph, pw), (height, width))
    for (x0, y0, x1, y1), plane in zip(boxes, up, strict=True):
        ys, xs = np.nonzero(plane)
        assert ys.min() >= y0 and ys.max() < y1 and xs.min() >= x0 and xs.max() < x1


def test_degenerate_windows_are_empty() -> None:
    windows = np.array([[5, 5, 5, 9], [5, 5, 9, 5], [9, 9, 3, 3], [-9, -9, -1, -1], [50, 0, 60, 9]])
    got = output_windows(windows, (40, 40), (100, 100))
    assert np.all(got == 0)


def test_plan_groups_partition_and_bound(rng: np.random.Generator) -> None:
    x0 = rng.integers(0, 500, 300)
    y0 = rng.integers(0, 400, 300)
    windows = np.stack([x0, y0, x0 + rng.integers(1, 140, 300), y0 + rng.integers(1, 80, 300)], 1)
    members = np.arange(0, 300, 2)
    for slack, limit in [(1.0, 1 << 30), (1.5, 1 << 22), (8.0, 20000)]:
        groups = plan_groups(windows, members, slack, limit)
        assert sorted(np.concatenate(groups).tolist()) == members.tolist()
        for group in groups:
            rows = windows[group, 3] - windows[group, 1] + 1
            widths = windows[group, 2] - windows[group, 0]
            cost = rows.sum() * widths.max()
            assert len(group) == 1 or cost <= min(slack * (rows * widths).sum() + 4096, limit)
