"""Mask R-CNN on a batch of mixed image sizes: one shared padded tensor vs groups by size.

Usage::

    .venv/bin/python benchmarks/bench_maskrcnn_padding.py [--model maskrcnn_shapes]
        [--batch 8] [--rounds 6]

The batch holds landscape (480x640) and portrait (640x480) images in equal numbers.
``batch_padding = "shared"`` (torchvision's own batching) resizes each image and pads all
of them to the largest height and the largest width, so every image of this batch runs
at 800x800-ish; ``"per_image"`` pads each image to a multiple of 32 only and batches the
images whose padded shapes are equal (two groups here).  Both run the same weights on the
same images in alternating rounds; printed: median ms per batch, the padded pixels each
way, and the ratio.  A batch of one size only is the control (both modes are equal there).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import numpy as np
import torch

from maskserve.models.registry import build_backend, find_model
from maskserve.models.synthetic.generator import generate_sample
from maskserve.workers import configure_cpu_threads


def mixed_images(count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = [(480, 640), (640, 480)]
    return [generate_sample(rng, *shapes[i % 2]).image for i in range(count)]


def padded_pixels(predictor: object, images: list[np.ndarray], mode: str) -> int:
    model = predictor.model  # type: ignore[attr-defined]
    tensors = predictor.preprocess(images)  # type: ignore[attr-defined]
    if mode == "shared":
        return int(model.transform(tensors)[0].tensors[0, 0].numel() * len(images))
    return sum(int(model.transform([t])[0].tensors[0, 0].numel()) for t in tensors)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="maskrcnn_shapes")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args(argv)
    configure_cpu_threads(1)
    backend = build_backend(find_model(args.model), "cpu")
    predictor = backend.predictor  # type: ignore[attr-defined]
    base = predictor.config
    images = mixed_images(args.batch, seed=0)
    times: dict[str, list[float]] = {"shared": [], "per_image": []}
    for number in range(args.rounds + 1):
        for mode in ["shared", "per_image"] if number % 2 else ["per_image", "shared"]:
            predictor.config = replace(base, batch_padding=mode)
            began = time.perf_counter()
            with torch.inference_mode():
                backend.infer(images, 100)
            if number:  # round 0 warms both up
                times[mode].append(time.perf_counter() - began)
    predictor.config = base
    shared, grouped = (statistics.median(times[m]) for m in ("shared", "per_image"))
    print(f"## Mask R-CNN ({args.model}), batch of {args.batch} mixed 480x640 / 640x480\n")
    print("| batch_padding | ms per batch | padded pixels per batch |")
    print("|---|---|---|")
    for mode, seconds in (("shared", shared), ("per_image", grouped)):
        pixels = padded_pixels(predictor, images, mode)
        print(f"| {mode} | {1e3 * seconds:.0f} | {pixels / 1e6:.2f} M |")
    print(f"\nper_image (grouped by size) / shared speed: {shared / grouped:.2f}x")


if __name__ == "__main__":
    main()
