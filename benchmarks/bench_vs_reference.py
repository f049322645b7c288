"""dbolya/yolact's own eval path against maskserve, same checkpoint, image bytes → COCO RLE.

Usage::

    git --git-dir=<mirror of github.com/dbolya/yolact> archive \\
        902073d414728280b496c5f0a59a8e8285b3c13c | tar -x -C /tmp/yolact_ref
    .venv/bin/python benchmarks/bench_vs_reference.py --reference-dir /tmp/yolact_ref \\
        [--config yolact_resnet50] [--rounds 12] [--contenders fp32,int8]

The reference copy stays outside this repository; this script copies it to a temporary
folder and patches it there only so that it runs on a CPU-only torch, changing nothing
it computes:

* ``yolact.py``: drop the bare ``torch.cuda.current_device()`` call and use plain
  ``nn.Module`` instead of TorchScript modules (``use_jit = False``);
* ``utils/augmentations.py``: ``FastBaseTransform`` keeps its mean/std on the CPU
  (``.cuda()`` removed).

The checkpoint: the reference network for ``--config`` built with ``torch.manual_seed(0)``
and its own initialisation, saved with ``torch.save(net.state_dict())`` (the original
checkpoint format); maskserve loads that file with its dbolya/yolact loader.  Random
weights give near-uniform scores, so both sides keep the top 100 detections per image
(score threshold 0), which makes the mask stage count as much as on a busy photo.

Per image, each contender does what its server would:

* ``reference``: ``cv2.imdecode`` (BGR) → ``FastBaseTransform`` → ``net`` (with its Detect,
  Fast NMS) → ``layers.output_utils.postprocess(crop_masks=True, score_threshold=0)`` →
  ``pycocotools.mask.encode(np.asfortranarray(mask))`` for each detection, as
  ``eval.py --output_coco_json`` does;
* ``fp32`` / ``bf16``: maskserve's eager backend in that dtype, bytes decoded by the
  server's decoder, ``select`` + ``build_result`` (RLE), as a worker does;
* ``int8``: the same checkpoint through ``maskserve export --int8`` (ONNX Runtime);
* ``served-<fp32|bf16>-c<N>``: ``maskserve serve`` on the same checkpoint (defaults, that
  dtype), N concurrent REST requests of the JPEG per call, time per image = time / N
  (``reference_served.py``).

Rounds interleave the contenders (order rotating) on the same image; printed: median ms
per image, img/s, and each maskserve contender's speed-up over the reference.
"""

from __future__ import annotations

import argparse
import importlib
import io
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from reference_served import is_served, served_contenders

from maskserve.cli import main as maskserve_main
from maskserve.imageio import decode_image
from maskserve.models.base import Backend
from maskserve.models.registry import ModelSpec, build_backend
from maskserve.models.synthetic.generator import generate_sample
from maskserve.models.yolact.backend import YolactBackend
from maskserve.models.yolact.checkpoint import load_yolact
from maskserve.models.yolact.config import get_config
from maskserve.options import SegmentOptions
from maskserve.results import build_result, select
from maskserve.workers import configure_cpu_threads

PATCHES = {
    "yolact.py": [
        ("torch.cuda.current_device()\n", "\n"),
        ("use_jit = torch.cuda.device_count() <= 1", "use_jit = False"),
    ],
    "utils/augmentations.py": [(".float().cuda()[None", ".float()[None")],
}
TOP_K = 100


def patched_copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    for name, replacements in PATCHES.items():
        path = target / name
        text = path.read_text()
        for old, new in replacements:
            if old not in text:
                raise SystemExit(f"{path}: expected {old!r}; is this commit 902073d?")
            text = text.replace(old, new)
        path.write_text(text)
    return target


class Reference:
    """The reference network and its eval path, imported from the patched copy."""

    def __init__(self, folder: Path, config: str, checkpoint: Path) -> None:
        sys.path.insert(0, str(folder))
        data = importlib.import_module("data")
        data.set_cfg(f"{config}_config")
        data.cfg.mask_proto_debug = False
        self.yolact = importlib.import_module("yolact")
        self.augment = importlib.import_module("utils.augmentations")
        self.output = importlib.import_module("layers.output_utils")
        torch.manual_seed(0)
        net = self.yolact.Yolact()
        if not checkpoint.exists():
            torch.save(net.state_dict(), checkpoint)
        net.load_weights(str(checkpoint))
        net.eval()
        net.detect.use_fast_nms = True
        net.detect.use_cross_class_nms = False
        net.detect.conf_thresh = 0.0
        net.detect.top_k = 200
        data.cfg.max_num_detections = TOP_K
        self.net = net
        self.transform = self.augment.FastBaseTransform()

    @torch.inference_mode()
    def __call__(self, blob: bytes) -> int:
        import cv2
        import pycocotools.mask as mask_utils

        frame = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
        height, width = frame.shape[:2]
        batch = self.transform(torch.from_numpy(frame).float()[None])
        dets = self.net(batch)
        _classes, _scores, boxes, masks = self.output.postprocess(
            dets, width, height, crop_masks=True, score_threshold=0.0
        )
        boxes, masks = boxes.numpy(), masks.numpy()
        encoded = 0
        for i in range(min(TOP_K, masks.shape[0])):
            if (boxes[i, 3] - boxes[i, 1]) * (boxes[i, 2] - boxes[i, 0]) > 0:
                mask_utils.encode(np.asfortranarray(masks[i].astype(np.uint8)))
                encoded += 1
        return encoded


def maskserve_runner(backend: Backend) -> Callable[[bytes], int]:
    info, options = backend.info, SegmentOptions(score_threshold=0.0, max_detections=TOP_K)

    @torch.inference_mode()
    def run(blob: bytes) -> int:
        found = backend.infer([decode_image(blob)], TOP_K)[0]
        kept = select(found, options, 0.0, TOP_K)
        return len(build_result(info.name, kept, options).detections)

    return run


def load_contenders(
    names: list[str], checkpoint: Path, config: str, root: Path, stack: ExitStack
) -> dict:
    base = get_config(config)
    settings = {"conf_thresh": 0.0, "nms_top_k": 200, "max_num_detections": TOP_K}
    cfg = replace(base, **settings)
    contenders: dict[str, Callable[[bytes], int]] = {}
    served = [name for name in names if is_served(name)]
    if served:
        contenders.update(served_contenders(served, checkpoint, cfg, root, stack))
    for name in names:
        if is_served(name):
            continue
        if name in ("fp32", "bf16"):
            dtype = torch.float32 if name == "fp32" else torch.bfloat16
            model = load_yolact(checkpoint, cfg)
            contenders[name] = maskserve_runner(
                YolactBackend(model, config, torch.device("cpu"), dtype, 0.0)
            )
        elif name == "int8":
            folder = root / f"{config}_int8"
            maskserve_main(
                [
                    "export",
                    "--weights",
                    str(checkpoint),
                    "--config",
                    config,
                    "--model-folder",
                    str(folder),
                    "--int8",
                    "--no-verify",
                ]
            )
            spec = ModelSpec.from_folder(folder)
            spec.table.update(settings)
            contenders[name] = maskserve_runner(build_backend(spec, "cpu"))
        else:
            raise SystemExit(f"unknown contender {name!r}")
    return contenders


def interleaved(runners: dict[str, Callable[[bytes], int]], blobs: list[bytes], rounds: int):
    names = list(runners)
    for run in runners.values():
        run(blobs[0])  # warm-up
    times: dict[str, list[float]] = {name: [] for name in names}
    counts: dict[str, list[int]] = {name: [] for name in names}
    for number in range(rounds):
        blob = blobs[number % len(blobs)]
        shift = number % len(names)
        for name in names[shift:] + names[:shift]:
            began = time.perf_counter()
            counts[name].append(runners[name](blob))
            # a served contender answers several images per call (its concurrency)
            images = getattr(runners[name], "images", 1)
            times[name].append((time.perf_counter() - began) / images)
    return times, counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference-dir", type=Path, required=True)
    parser.add_argument("--config", default="yolact_resnet50")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--contenders", default="fp32,int8")
    parser.add_argument("--image-size", default="480x640", help="HxW of the synthetic photos")
    args = parser.parse_args(argv)
    configure_cpu_threads(1)
    height, width = (int(v) for v in args.image_size.split("x"))
    rng = np.random.default_rng(0)
    blobs = []
    for _ in range(4):
        out = io.BytesIO()
        Image.fromarray(generate_sample(rng, height, width).image).save(out, "JPEG", quality=90)
        blobs.append(out.getvalue())
    with tempfile.TemporaryDirectory(prefix="bench_ref_") as temp, ExitStack() as stack:
        root = Path(temp)
        checkpoint = root / f"{args.config}_random.pth"
        reference = Reference(
            patched_copy(args.reference_dir, root / "yolact"), args.config, checkpoint
        )
        runners = {
            "reference": reference,
            **load_contenders(args.contenders.split(","), checkpoint, args.config, root, stack),
        }
        times, counts = interleaved(runners, blobs, args.rounds)
    ref = statistics.median(times["reference"])
    print(
        f"\n## {args.config}: dbolya/yolact eval path vs maskserve, bytes → RLE, "
        f"{height}x{width} JPEG, batch 1, {args.rounds} interleaved rounds\n"
    )
    print("| contender | ms per image (median) | img/s | detections per image | vs reference |")
    print("|---|---|---|---|---|")
    for name, values in times.items():
        ms = 1e3 * statistics.median(values)
        print(
            f"| {name} | {ms:.0f} | {1e3 / ms:.2f} | {statistics.median(counts[name]):.0f} "
            f"| {ref / statistics.median(values):.2f}× |"
        )


if __name__ == "__main__":
    main()
