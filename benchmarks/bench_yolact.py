"""Images/s and per-stage times of YOLACT inference, and the mask stage against the reference.

Usage::

    .venv/bin/python benchmarks/bench_yolact.py [--device cpu] [--fp16] [--reps 5]
        [--models shipped,yolact_resnet50] [--batches 1,4,8]

For each model and batch size it times preprocess, forward, detection, mask assembly and
RLE encoding (median of ``--reps``), then prints images/s. ``yolact_resnet50`` and
``yolact_base`` use random weights with the candidate threshold at 0 so that every image
yields 100 detections, which makes the mask stage measurable. Finally it compares our mask
stage (assembly + windowed encode) with the reference way (assembly + full-size upsample +
Fortran copy + ``pycocotools.mask.encode``) on the same detections, in the same process.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import torch
from PIL import Image

from maskserve.masks import encode_masks
from maskserve.models.registry import DEFAULT_MODEL, find_model
from maskserve.models.yolact.assemble import upsample_masks
from maskserve.models.yolact.backend import yolact_backend_factory
from maskserve.models.yolact.config import CONFIGS
from maskserve.models.yolact.network import Yolact
from maskserve.models.yolact.predictor import YolactPredictor

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "models" / "zoo" / "yolact_shapes" / "example.png"
STAGES = ("preprocess", "forward", "detect", "assemble", "encode")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    sync(device)
    start = time.perf_counter()
    value = fn()
    sync(device)
    return time.perf_counter() - start, value


def make_predictor(name: str, device: torch.device, dtype: torch.dtype) -> YolactPredictor:
    if name == "shipped":
        return yolact_backend_factory(find_model(DEFAULT_MODEL), device, dtype).predictor
    torch.manual_seed(0)
    model = Yolact(replace(CONFIGS[name], conf_thresh=0.0))
    return YolactPredictor(model, device, dtype)


def run_stages(predictor: YolactPredictor, images: list[np.ndarray]) -> dict[str, float]:
    device = predictor.device
    sizes = [img.shape[:2] for img in images]
    times: dict[str, float] = {}
    times["preprocess"], batch = timed(lambda: predictor.preprocess(images), device)
    times["forward"], raw = timed(lambda: predictor.forward(batch), device)
    times["detect"], found = timed(lambda: predictor.detect(raw), device)
    times["assemble"], dets = timed(lambda: predictor.assemble(raw, found, sizes), device)

    def encode() -> None:
        for d in dets:
            encode_masks(d.lowres_masks, d.proto_windows, d.image_size, d.mask_threshold)

    times["encode"], _ = timed(encode, device)
    return times


def bench_model(name: str, images: list[np.ndarray], args: argparse.Namespace) -> None:
    predictor = make_predictor(name, args.device, args.dtype)
    size = predictor.config.max_size
    for batch in args.batches:
        chunk = (images * batch)[:batch]
        run_stages(predictor, chunk)
        runs = [run_stages(predictor, chunk) for _ in range(args.reps)]
        median = {s: statistics.median(r[s] for r in runs) for s in STAGES}
        total = sum(median.values())
        detections = len(predictor.predict(chunk[:1])[0])
        stages = "  ".join(f"{s} {median[s] * 1000:7.1f}" for s in STAGES)
        print(f"{name:<16} {size:>4}px batch {batch}: {batch / total:6.2f} img/s  "
              f"(ms per batch: {stages}; {detections} dets/img)")  # fmt: skip


def reference_mask_stage(dets: list) -> None:
    for d in dets:
        full = upsample_masks(d.lowres_masks, d.image_size, d.mask_threshold)
        fortran = np.asfortranarray(full.permute(1, 2, 0).cpu().numpy().view(np.uint8))
        mask_utils.encode(fortran)


def compare_mask_stage(args: argparse.Namespace, image: np.ndarray) -> None:
    predictor = make_predictor("yolact_resnet50", args.device, args.dtype)
    raw = predictor.forward(predictor.preprocess([image]))
    found = predictor.detect(raw)
    sizes = [image.shape[:2]]

    def ours() -> None:
        for d in predictor.assemble(raw, found, sizes):
            encode_masks(d.lowres_masks, d.proto_windows, d.image_size, d.mask_threshold)

    def reference() -> None:
        reference_mask_stage(predictor.assemble(raw, found, sizes))

    ours_t, ref_t = [], []
    for _ in range(max(args.reps, 9)):
        ours_t.append(timed(ours, args.device)[0])
        ref_t.append(timed(reference, args.device)[0])
    o, r = statistics.median(ours_t), statistics.median(ref_t)
    n = len(found[0].scores)
    print(f"mask stage, {n} detections at {image.shape[1]}x{image.shape[0]}: reference "
          f"{r * 1000:.1f} ms, ours {o * 1000:.1f} ms, ratio {r / o:.1f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", type=torch.device, default=torch.device("cpu"))
    parser.add_argument("--fp16", action="store_true")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default="shipped,yolact_resnet50")
    parser.add_argument("--batches", default="1,4,8")
    args = parser.parse_args()
    args.dtype = torch.float16 if args.fp16 else torch.float32
    args.batches = [int(b) for b in args.batches.split(",")]
    torch.set_num_threads(args.threads)
    example = np.asarray(Image.open(EXAMPLE).convert("RGB"))
    print(f"device {args.device}, dtype {args.dtype}, torch threads {torch.get_num_threads()}")
    for name in args.models.split(","):
        bench_model(name, [example], args)
    compare_mask_stage(args, example)


if __name__ == "__main__":
    main()
