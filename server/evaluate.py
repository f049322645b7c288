"""``maskserve evaluate``: COCO mask and box AP of a model on held-out synthetic images."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from maskserve.auto_backend import build_any
from maskserve.errors import MaskserveError
from maskserve.models.base import Backend
from maskserve.models.registry import DEFAULT_MODEL, find_model
from maskserve.options import SegmentOptions
from maskserve.progress import Progress
from maskserve.result_json import result_json
from maskserve.results import build_result, select
from maskserve.settings import DTYPES

HELD_OUT_SEED = 2026


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model folder name")
    parser.add_argument(
        "--model-repository", type=Path, help="folder of model folders (default: the shipped zoo)"
    )
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=sorted(DTYPES),
        help="weights' dtype for eager models (ONNX graphs run in their own)",
    )
    parser.add_argument("--dataset", type=Path, help="COCO folder (generated when missing)")
    parser.add_argument("--num", type=int, default=500, help="held-out images to generate")
    parser.add_argument(
        "--seed", type=int, default=HELD_OUT_SEED, help="seed of the generated held-out set"
    )
    parser.add_argument("--size", default="384x288", help="WIDTHxHEIGHT of generated images")
    parser.add_argument("--limit", type=int, help="evaluate only the first N images")
    parser.add_argument("--json", type=Path, help="also write the metrics here")


def held_out_dataset(folder: Path | None, num: int, seed: int, size: str) -> Path:
    """The data set folder, generating it with ``write_coco_dataset`` if absent."""
    from maskserve.models.synthetic import write_coco_dataset  # needs the [train] extra

    width, height = (int(v) for v in size.lower().split("x"))
    folder = folder or Path("data") / f"heldout_s{seed}_{num}_{width}x{height}"
    if not (folder / "annotations.json").is_file():
        write_coco_dataset(folder, num, seed, height, width)
    return folder


def predictor(backend: Backend) -> Any:
    """An ``evaluate_model`` predict function: every detection (COCO style, up to 100)."""
    options = SegmentOptions(score_threshold=0.0, max_detections=100)

    def predict(image: np.ndarray) -> list[dict[str, Any]]:
        found = backend.infer([image], max_detections=100)[0]
        result = build_result(backend.info.name, select(found, options, 0.0, 100), options)
        return result_json(result)["detections"]

    return predict


def run(args: argparse.Namespace) -> int:
    try:
        from maskserve.models.evaluation import evaluate_model  # needs the [train] extra
    except ImportError as exc:
        raise MaskserveError(
            f"`maskserve evaluate` needs the train extra ({exc.name or exc} is missing): "
            "pip install 'maskserve[train]'"
        ) from None

    backend = build_any(
        find_model(args.model, args.model_repository), args.device, DTYPES[args.dtype]
    )
    dataset = held_out_dataset(args.dataset, args.num, args.seed, args.size)
    total = len(json.loads((dataset / "annotations.json").read_text())["images"])
    progress = Progress("evaluate", min(total, args.limit or total))
    metrics = evaluate_model(predictor(backend), dataset, args.limit, progress.advance)
    summary = {"model": args.model, "dataset": str(dataset), **metrics}
    sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0
