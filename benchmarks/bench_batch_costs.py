"""The batch-size cost curve of each model and the size the adaptive batcher chooses.

Usage::

    .venv/bin/python benchmarks/bench_batch_costs.py [--models yolact_shapes,maskrcnn_shapes,
        yolact_resnet50] [--sizes 1,2,4,8] [--rounds 3] [--threads 2]

Each model is built as ``maskserve serve`` builds it on a CPU (default fast paths; the
shipped models from ``models/zoo``, ``yolact_resnet50`` with seeded random weights since
no checkpoint ships), and its whole model side (``backend.infer``: preprocessing, forward,
detection, mask assembly) is timed on batches of the example image at each size, sizes
interleaved in rotating order within each round after one untimed run of each. The
medians go into the batcher's own cost model (``server/batch_cost.py``), whose choice is
what a server with ``max_batch_size`` = the largest size would batch up to.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from maskserve.batch_cost import BatchCostModel
from maskserve.models.registry import ZOO_DIR, ModelSpec, build_backend

EXAMPLE = ZOO_DIR / "yolact_shapes" / "example.png"


def backend_for(name: str) -> Any:
    if name == "yolact_resnet50":
        from maskserve.models.yolact.backend import YolactBackend
        from maskserve.models.yolact.config import get_config
        from maskserve.models.yolact.network import Yolact

        torch.manual_seed(0)
        model = Yolact(get_config("yolact_resnet50"))
        return YolactBackend(model, name, torch.device("cpu"), torch.float32, 0.05)
    return build_backend(ModelSpec.from_folder(ZOO_DIR / name), torch.device("cpu"))


def curve(name: str, sizes: list[int], rounds: int, image: np.ndarray) -> dict[int, float]:
    """Median seconds per batch, by size."""
    backend = backend_for(name)
    limit = backend.info.max_detections
    times: dict[int, list[float]] = {size: [] for size in sizes}
    for size in sizes:
        backend.infer([image] * size, limit)  # untimed: first run of this shape
    for number in range(rounds):
        shift = number % len(sizes)
        for size in sizes[shift:] + sizes[:shift]:
            began = time.perf_counter()
            backend.infer([image] * size, limit)
            times[size].append(time.perf_counter() - began)
    return {size: statistics.median(values) for size, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="yolact_shapes,maskrcnn_shapes,yolact_resnet50")
    parser.add_argument("--sizes", default="1,2,4,8")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--image", type=Path, default=EXAMPLE)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    image = np.asarray(Image.open(args.image).convert("RGB"))
    print(f"image {image.shape[1]}x{image.shape[0]}, {args.threads} threads, {args.rounds} rounds")
    header = " | ".join(f"batch {s}" for s in sizes)
    print(f"| model | {header} | chosen (max {max(sizes)}) |")
    print("|---|" + "---|" * len(sizes) + "---|")
    for name in args.models.split(","):
        seconds = curve(name, sizes, args.rounds, image)
        model = BatchCostModel(max(sizes))
        for size, value in seconds.items():
            model.observe(size, value)
        cells = " | ".join(f"{seconds[s] / s * 1e3:.0f} ms/img" for s in sizes)
        print(f"| {name} | {cells} | {model.limit} |", flush=True)


if __name__ == "__main__":
    main()
