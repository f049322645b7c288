"""``maskserve predict``: offline inference on image files, JSON + overlay PNG per image."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from maskserve.auto_backend import build_any
from maskserve.imageio import decode_image
from maskserve.models.base import Backend
from maskserve.models.registry import DEFAULT_MODEL, ModelSpec, build_backend, find_model
from maskserve.models.yolact.backend import YolactBackend
from maskserve.models.yolact.checkpoint import load_yolact, read_state_dict
from maskserve.options import SegmentOptions
from maskserve.overlay import draw_overlay
from maskserve.progress import Progress
from maskserve.result_json import result_json
from maskserve.results import ImageResult, build_result, select

DEFAULT_SCORE_THRESHOLD = 0.3


def add_model_source_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model NAME [--model-repository DIR]`` or ``--weights FILE [--config NAME]``."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", default=None, help=f"model name (default {DEFAULT_MODEL})")
    source.add_argument(
        "--weights",
        type=Path,
        help="a YOLACT (dbolya/yolact) or torchvision Mask R-CNN checkpoint, or an ONNX file "
        "(a maskserve export, or an Ultralytics YOLO-seg export with its metadata)",
    )
    parser.add_argument("--config", help="config name for --weights (default: inferred)")
    parser.add_argument("--model-repository", type=Path, help="folder of model folders")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", type=Path, help="image files (JPEG, PNG, WebP)")
    add_model_source_arguments(parser)
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    parser.add_argument(
        "--fp16",
        action="store_true",
        help="run the network in float16 (eager models; an ONNX graph must have been "
        "exported with --fp16)",
    )
    parser.add_argument(
        "--score-threshold",
        type=float,
        default=None,
        help="keep detections scoring strictly above this (default: the model's "
        f"score_threshold from its model.toml, as the server uses; {DEFAULT_SCORE_THRESHOLD} "
        "for a bare --weights file)",
    )
    parser.add_argument(
        "--max-detections", type=int, default=100, help="at most this many per image"
    )
    parser.add_argument("--batch-size", type=int, default=4, help="images per forward pass")
    parser.add_argument("--out", type=Path, default=Path("out"), help="output folder")


class PredictError(Exception):
    """A problem with the command's arguments, reported without a traceback."""


def load_backend(args: argparse.Namespace) -> Backend:
    dtype = torch.float16 if args.fp16 else torch.float32
    device = torch.device(args.device)
    if args.weights is not None:
        backend = backend_for_weights(args.weights, args.config, device, dtype)
    else:
        spec = find_model(args.model or DEFAULT_MODEL, args.model_repository)
        backend = build_any(spec, device, dtype)
    if args.fp16 and backend.info.dtype != "float16":
        raise PredictError(
            f"--fp16: model {backend.info.name} runs in {backend.info.dtype} (an ONNX graph "
            "keeps the dtype it was exported in; export it with --fp16, or drop --fp16)"
        )
    return backend


def onnx_spec(path: Path) -> ModelSpec:
    """A model spec for a bare ONNX file, its family read from the graph's metadata."""
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise PredictError(f"{path.name} is not a readable ONNX file: {exc}") from None
    metadata = {prop.key: prop.value for prop in graph.metadata_props}
    if "maskserve_family" in metadata:
        family, settings = metadata["maskserve_family"], {"backend": "onnxruntime"}
    elif "task" in metadata:  # Ultralytics' export metadata
        family, settings = "yoloseg", {}
    else:
        raise PredictError(
            f"{path.name} has neither maskserve's nor Ultralytics' metadata: put it in a model "
            "folder with a model.toml that names its family (README: Model families)"
        )
    return ModelSpec(path.stem, path.parent, family, path, {}, settings)


def is_maskrcnn_checkpoint(path: Path, config: str | None) -> bool:
    """A ``maskrcnn_*`` config name, or (none named) torchvision's ``roi_heads`` keys."""
    if config is not None:
        return config.startswith("maskrcnn")
    return any(key.startswith("roi_heads.") for key in read_state_dict(path))


def backend_for_weights(
    path: Path, config: str | None, device: torch.device, dtype: torch.dtype
) -> Backend:
    """A backend for a bare file: an ONNX graph, or a YOLACT (dbolya/yolact) or torchvision
    Mask R-CNN checkpoint."""
    if not path.is_file():
        raise PredictError(f"--weights {path}: no such file")
    if path.suffix.lower() == ".onnx":
        return build_backend(onnx_spec(path), device, dtype)
    try:
        is_maskrcnn = is_maskrcnn_checkpoint(path, config)
    except Exception as exc:  # an unpicklable or foreign file: say what --weights takes
        raise PredictError(
            f"--weights {path.name} could not be read as a checkpoint ({type(exc).__name__}); "
            "it takes a YOLACT or torchvision Mask R-CNN state dict (.pth, .safetensors) "
            "or an ONNX file (.onnx)"
        ) from None
    if is_maskrcnn:
        from maskserve.models.maskrcnn.backend import MaskRcnnBackend
        from maskserve.models.maskrcnn.checkpoint import load_maskrcnn

        model, chosen = load_maskrcnn(path, config)
        return MaskRcnnBackend(model, chosen, path.stem, device, dtype)
    return YolactBackend(load_yolact(path, config), path.stem, device, dtype)


def run(args: argparse.Namespace) -> int:
    try:
        backend = load_backend(args)
    except PredictError as exc:
        print(f"maskserve predict: {exc}", file=sys.stderr)
        return 2
    threshold = args.score_threshold
    if threshold is None:  # one default with the server: the model's own
        bare = args.weights is not None
        threshold = DEFAULT_SCORE_THRESHOLD if bare else backend.info.score_threshold
    options = SegmentOptions(score_threshold=threshold, max_detections=args.max_detections)
    args.out.mkdir(parents=True, exist_ok=True)
    progress = Progress("predict", len(args.images))
    for start in range(0, len(args.images), args.batch_size):
        paths = args.images[start : start + args.batch_size]
        images = [decode_image(p.read_bytes()) for p in paths]
        began = time.perf_counter()
        found = backend.infer(images, max_detections=args.max_detections)
        results = [
            build_result(backend.info.name, select(d, options, 0.0, args.max_detections), options)
            for d in found
        ]
        elapsed = time.perf_counter() - began
        for path, image, result in zip(paths, images, results, strict=True):
            write_outputs(path, image, result, args.out)
            print_table(path, result, elapsed / len(paths))
        progress.advance(len(paths))
    return 0


def write_outputs(path: Path, image, result: ImageResult, out: Path) -> None:
    payload = result_json(result, include_timings=False)
    (out / f"{path.stem}.json").write_text(json.dumps(payload) + "\n")
    draw_overlay(image, payload["detections"]).save(out / f"{path.stem}.png")


def print_table(path: Path, result: ImageResult, seconds: float) -> None:
    write = sys.stdout.write
    write(
        f"{path} ({result.width}x{result.height}): {len(result.detections)} detections, "
        f"{seconds * 1000:.0f} ms\n"
    )
    write(f"  {'#':>3}  {'label':<12} {'score':>6}  box [x1, y1, x2, y2]\n")
    for i, det in enumerate(result.detections):
        box = ", ".join(f"{v:.0f}" for v in det.box)
        write(f"  {i:>3}  {det.label:<12} {det.score:6.3f}  [{box}]\n")
