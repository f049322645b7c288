"""Eager PyTorch vs ONNX Runtime (float, and int8 with ``--int8``), in one process.

Usage::

    .venv/bin/python benchmarks/bench_backends.py [--models yolact_shapes,maskrcnn_shapes]
        [--batches 1,8] [--reps 10] [--image-size 480x640] [--device cpu] [--int8]

For each model the shipped eager backend is exported with ``maskserve export
--model-folder`` into a temporary folder and loaded back through the model registry
exactly as the server loads it (``backend = "onnxruntime"``).  Both backends then run
``infer`` (preprocess → network → detection → low-resolution masks; what a worker does per
batch) on the same synthetic images, in alternating blocks of eager and ONNX repetitions
so that a noisy machine slows both alike.  Printed: the median seconds per batch, images/s, and the
ONNX/eager ratio.  Serving figures come from ``bench_serving.py`` pointed at the same
folders (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from maskserve.cli import main as maskserve_main
from maskserve.models.base import Backend
from maskserve.models.registry import ModelSpec, build_backend, find_model
from maskserve.models.synthetic.generator import generate_sample
from maskserve.workers import configure_cpu_threads


def make_images(count: int, height: int, width: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [generate_sample(rng, height, width).image for _ in range(count)]


def export_folder(model: str, root: Path, int8: bool = False) -> Path:
    folder = root / f"{model}_{'int8' if int8 else 'onnx'}"
    began = time.perf_counter()
    flags = ["--int8"] if int8 else ["--no-verify"]
    maskserve_main(["export", "--model", model, "--model-folder", str(folder), *flags])
    print(f"  exported {folder.name} in {time.perf_counter() - began:.1f} s", flush=True)
    return folder


def timer(backend: Backend, images: list[np.ndarray]) -> Callable[[], float]:
    def run() -> float:
        began = time.perf_counter()
        backend.infer(images, backend.info.max_detections)
        return time.perf_counter() - began

    return run


def compare(
    backends: dict[str, Backend], images: list[np.ndarray], batch: int, reps: int
) -> dict[str, float]:
    """Median seconds per batch of ``batch`` images, per contender.

    Blocks of repetitions alternate (one block per contender, twice): alternating single
    calls would let each runtime's idle thread pool fall asleep between its calls, which
    costs a batch-1 forward more than the noise it averages out.
    """
    chunk = [images[i % len(images)] for i in range(batch)]
    runs = {name: timer(backend, chunk) for name, backend in backends.items()}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(2):
        for name, run in runs.items():
            run()  # warm-up: first-call allocations, wake the thread pool
            times[name].extend(run() for _ in range(max(1, reps // 2)))
    return {name: statistics.median(values) for name, values in times.items()}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="yolact_shapes,maskrcnn_shapes")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--image-size", default="480x640", help="HxW")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--int8", action="store_true", help="also an int8 export (maskserve export --int8)"
    )
    return parser.parse_args(argv)


def load_contenders(model: str, device: torch.device, root: Path, int8: bool) -> dict[str, Backend]:
    contenders = {
        "eager": build_backend(find_model(model), device),
        "onnx": build_backend(ModelSpec.from_folder(export_folder(model, root)), device),
    }
    if int8:
        folder = export_folder(model, root, int8=True)
        contenders["int8"] = build_backend(ModelSpec.from_folder(folder), device)
    return contenders


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cpu":
        configure_cpu_threads(1)  # one CPU worker gets every core, as in the server
    height, width = (int(v) for v in args.image_size.lower().split("x"))
    images = make_images(8, height, width, args.seed)
    batches = [int(b) for b in args.batches.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_backends_") as temp:
        for model in args.models.split(","):
            backends = load_contenders(model, device, Path(temp), args.int8)
            for batch in batches:
                seconds = compare(backends, images, batch, args.reps)
                rows.append((model, batch, seconds))
                print(
                    f"  {model} batch {batch}: "
                    + ", ".join(f"{name} {value:.3f} s" for name, value in seconds.items())
                )
    names = list(rows[0][2])
    print(f"\n## {' vs '.join(names)} on {args.device}, {height}x{width} images\n")
    print(
        "| model | batch | "
        + " | ".join(f"{n} img/s" for n in names)
        + " | "
        + " | ".join(f"{n}/eager" for n in names[1:])
        + " |"
    )
    print("|---|---|" + "---|" * (2 * len(names) - 1))
    for model, batch, seconds in rows:
        rates = " | ".join(f"{batch / seconds[n]:.1f}" for n in names)
        ratios = " | ".join(f"{seconds['eager'] / seconds[n]:.2f}x" for n in names[1:])
        print(f"| {model} | {batch} | {rates} | {ratios} |")


if __name__ == "__main__":
    main()
