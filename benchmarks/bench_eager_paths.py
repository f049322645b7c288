"""Eager-path options on the CPU, side by side: memory format, BN folding, bfloat16, compile.

Usage::

    .venv/bin/python benchmarks/bench_eager_paths.py [--models yolact_shapes,maskrcnn_shapes]
        [--batch 4] [--rounds 8] [--compile] [--r50 CHECKPOINT]

Per model, the network's forward (the 85 % of an image's time that the other stages do not
touch) on the same preprocessed batch, variant after variant within each round (the order
rotates per round), median seconds over ``--rounds``:

- ``fp32_nchw``: float32, NCHW (the eager default before channels-last);
- ``fp32_cl``: float32, channels-last weights and input (the CPU default now);
- ``fp32_cl_bnfold``: the same with every Conv2d→BatchNorm2d pair folded into the conv
  (nn.Sequential pairs and ResNet's convN/bnN; frozen BN in torchvision is already affine);
- ``bf16_cl``: bfloat16 weights (``dtype = "bfloat16"``), channels-last;
- ``compiled`` (``--compile``): ``torch.compile`` (inductor) of ``fp32_cl``; its compile
  time is printed too.

``torch.inference_mode`` is on for all (the predictors always use it). Also printed: the
largest difference of each variant's raw outputs from ``fp32_nchw``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from maskserve.models.conv_bn import fold_batchnorms
from maskserve.models.registry import ZOO_DIR, ModelSpec, build_backend

EXAMPLE = ZOO_DIR / "yolact_shapes" / "example.png"


def flat(outputs: Any) -> list[torch.Tensor]:
    if isinstance(outputs, torch.Tensor):
        return [outputs.float()]
    if isinstance(outputs, dict):
        return [t for v in outputs.values() for t in flat(v)]
    if isinstance(outputs, list | tuple):
        return [t for v in outputs for t in flat(v)]
    fields = getattr(outputs, "__dict__", None) or {}
    return [t for v in fields.values() for t in flat(v)]


def variants(backend: Any, batch: torch.Tensor, compile_too: bool) -> dict[str, Callable]:
    """name → a zero-argument forward on the batch."""
    predictor = backend.predictor
    base = predictor.model.float().to(memory_format=torch.contiguous_format)
    net = base.backbone if hasattr(base, "rpn") else base  # Mask R-CNN: its backbone + FPN
    nchw = copy.deepcopy(net)
    cl = copy.deepcopy(net).to(memory_format=torch.channels_last)
    folded = copy.deepcopy(net)
    count = fold_batchnorms(folded)
    folded = folded.to(memory_format=torch.channels_last)
    bf16 = copy.deepcopy(net).to(torch.bfloat16).to(memory_format=torch.channels_last)
    batch_cl = batch.contiguous(memory_format=torch.channels_last)
    runs: dict[str, Callable] = {
        "fp32_nchw": lambda: nchw(batch),
        "fp32_cl": lambda: cl(batch_cl),
        f"fp32_cl_bnfold({count})": lambda: folded(batch_cl),
        "bf16_cl": lambda: bf16(batch_cl.bfloat16()),
    }
    if compile_too:
        compiled = torch.compile(copy.deepcopy(cl))
        began = time.perf_counter()
        with torch.inference_mode():
            compiled(batch_cl)
        print(f"  torch.compile: first call {time.perf_counter() - began:.1f} s")
        runs["compiled"] = lambda: compiled(batch_cl)
    return runs


def model_batch(name: str, r50: Path | None, batch: int) -> tuple[Any, torch.Tensor]:
    image = np.asarray(Image.open(EXAMPLE).convert("RGB"))
    if name == "yolact_resnet50":
        from maskserve.models.yolact.backend import YolactBackend
        from maskserve.models.yolact.checkpoint import load_yolact
        from maskserve.models.yolact.config import get_config
        from maskserve.models.yolact.network import Yolact

        config = get_config("yolact_resnet50")
        torch.manual_seed(0)  # random weights unless an original checkpoint is given
        model = load_yolact(r50, config) if r50 is not None else Yolact(config)
        backend = YolactBackend(model, name, torch.device("cpu"), torch.float32, 0.0, False)
    else:
        spec = ModelSpec.from_folder(ZOO_DIR / name)
        backend = build_backend(spec, torch.device("cpu"), channels_last=False)
    predictor = backend.predictor
    with torch.inference_mode():
        if hasattr(predictor.model, "rpn"):
            tensors = predictor.preprocess([image] * batch)
            x = predictor.model.transform(tensors)[0].tensors
        else:
            x = predictor.preprocess([image] * batch)
    return backend, x.contiguous()


def measure(runs: dict[str, Callable], rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    with torch.inference_mode():
        for run in runs.values():
            run()
        for number in range(rounds):
            shift = number % len(names)
            for name in names[shift:] + names[:shift]:
                began = time.perf_counter()
                runs[name]()
                times[name].append(time.perf_counter() - began)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="yolact_shapes,maskrcnn_shapes")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument(
        "--r50", type=Path, help="yolact_resnet50 checkpoint (original format; else random)"
    )
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}")
    for name in args.models.split(","):
        print(f"== {name}")
        backend, batch = model_batch(name, args.r50, args.batch)
        runs = variants(backend, batch, args.compile)
        with torch.inference_mode():
            reference = flat(runs["fp32_nchw"]())
            for variant, run in runs.items():
                diff = max(
                    (a - b).abs().max().item() for a, b in zip(flat(run()), reference, strict=False)
                )
                print(f"  {variant}: max |output - fp32_nchw| = {diff:.3g}")
        times = measure(runs, args.rounds)
        base = statistics.median(times["fp32_nchw"])
        for variant, values in times.items():
            median = statistics.median(values)
            print(
                f"  {variant:24s} {median * 1000:8.1f} ms/batch "
                f"{args.batch / median:6.2f} img/s  {base / median:.2f}x fp32_nchw"
            )


if __name__ == "__main__":
    main()
