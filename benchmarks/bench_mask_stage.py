"""Benchmark of the mask stage: cropped prototype masks -> COCO compressed RLE strings.

Compares, on identical inputs, the reference way (full-size ``F.interpolate`` + threshold +
Fortran copy + ``pycocotools.mask.encode``) with ``maskserve.masks.encode_masks``.

Usage::

    .venv/bin/python benchmarks/bench_mask_stage.py [--reps 15] [--device cpu] [--threads 2]
        [--stage-threads N]

``--threads`` is ``torch.set_num_threads`` for both paths.  On a CPU the mask stage by
default runs its own ops single-threaded (``StagePolicy.cpu_threads``); ``--stage-threads
0`` keeps torch's setting instead, ``--stage-threads N`` uses N.

Timings are the median of interleaved repetitions (``time.perf_counter``); on a CUDA device
each call is synchronised before the clock stops.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import numpy as np
import pycocotools.mask as mask_utils
import torch
import torch.nn.functional as F

from maskserve.masks import StagePolicy, encode_masks

PROTO_SIZE = (138, 138)
WORKLOADS = ((100, (480, 640)), (20, (1080, 1920)))


def realistic_inputs(
    n: int, image_size: tuple[int, int], seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """YOLACT-like cropped soft masks: smooth blobs inside boxes of COCO-like sizes.

    Box side ~ sqrt(area) is log-uniform in [3%, 60%] of the image side with aspect ratio
    log-uniform in [1/3, 3]; the prototype window is YOLACT's crop (box +- 1 proto pixel).
    """
    rng = np.random.default_rng(seed)
    ph, pw = PROTO_SIZE
    side = np.exp(rng.uniform(math.log(0.03), math.log(0.6), n))
    aspect = np.exp(rng.uniform(math.log(1 / 3), math.log(3), n))
    bw = np.minimum(side * np.sqrt(aspect), 1.0)
    bh = np.minimum(side / np.sqrt(aspect), 1.0)
    cx = rng.uniform(bw / 2, 1 - bw / 2)
    cy = rng.uniform(bh / 2, 1 - bh / 2)
    x_lo = np.maximum(0, (cx - bw / 2) * pw - 1)
    x_hi = np.minimum(pw, (cx + bw / 2) * pw + 1)
    y_lo = np.maximum(0, (cy - bh / 2) * ph - 1)
    y_hi = np.minimum(ph, (cy + bh / 2) * ph + 1)
    windows = np.stack([np.ceil(x_lo), np.ceil(y_lo), np.ceil(x_hi), np.ceil(y_hi)], 1)

    gy = (np.arange(ph)[None, :, None] + 0.5) / ph
    gx = (np.arange(pw)[None, None, :] + 0.5) / pw
    radius = ((gx - cx[:, None, None]) / (bw[:, None, None] / 2)) ** 2
    radius = radius + ((gy - cy[:, None, None]) / (bh[:, None, None] / 2)) ** 2
    coarse = torch.from_numpy(rng.normal(size=(n, 1, 8, 8)).astype(np.float32))
    noise = F.interpolate(coarse, size=PROTO_SIZE, mode="bicubic", align_corners=False)[:, 0]
    logits = torch.from_numpy((6.0 * (1.0 - radius)).astype(np.float32)) + 2.0 * noise
    keep = np.zeros((n, ph, pw), dtype=bool)
    for i, (c0, r0, c1, r1) in enumerate(windows.astype(np.int64).tolist()):
        keep[i, r0:r1, c0:c1] = True
    lowres = torch.sigmoid(logits) * torch.from_numpy(keep)
    return lowres.contiguous(), torch.from_numpy(windows.astype(np.int64))


def reference_encode(lowres: torch.Tensor, image_size: tuple[int, int]) -> list[dict]:
    """What the reference server does: full masks, host copy, Fortran copy, pycocotools."""
    full = F.interpolate(lowres[None], size=image_size, mode="bilinear", align_corners=False)
    masks = (full[0] > 0.5).permute(1, 2, 0).cpu().numpy().astype(np.uint8)
    rles = mask_utils.encode(np.asfortranarray(masks))
    return [{"size": r["size"], "counts": r["counts"].decode("ascii")} for r in rles]


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def bench_workload(
    n: int,
    image_size: tuple[int, int],
    reps: int,
    device: torch.device,
    policy: StagePolicy | None,
) -> None:
    """Time both paths on one workload (interleaved) and print medians and their ratio."""
    lowres, windows = realistic_inputs(n, image_size, seed=n)
    lowres, windows = lowres.to(device), windows.to(device)
    ours = encode_masks(lowres, windows, image_size, policy=policy)
    ref = reference_encode(lowres, image_size)
    same = sum(a["counts"] == b["counts"] for a, b in zip(ours, ref, strict=True))
    runs = sum(len(r["counts"]) for r in ours)
    t_ref: list[float] = []
    t_ours: list[float] = []
    for _ in range(reps):
        t_ref.append(_timed(lambda: reference_encode(lowres, image_size), device))
        t_ours.append(
            _timed(lambda: encode_masks(lowres, windows, image_size, policy=policy), device)
        )
    ref_ms = 1e3 * statistics.median(t_ref)
    ours_ms = 1e3 * statistics.median(t_ours)
    h, w = image_size
    print(
        f"{n:4d} masks {w}x{h} on {device}: reference {ref_ms:8.2f} ms "
        f"(min {1e3 * min(t_ref):.2f})  ours {ours_ms:7.2f} ms (min {1e3 * min(t_ours):.2f})  "
        f"speed-up x{ref_ms / ours_ms:5.1f}  identical {same}/{n}  chars {runs}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--stage-threads", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    policy = None
    if args.stage_threads is not None:
        policy = StagePolicy(cpu_threads=args.stage_threads or None)
    print(f"torch threads {torch.get_num_threads()}, stage policy {policy or 'default'}")
    for n, image_size in WORKLOADS:
        bench_workload(n, image_size, args.reps, device, policy)


if __name__ == "__main__":
    main()
