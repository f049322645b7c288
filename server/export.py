"""``maskserve export``: a loaded model → ONNX, checked and compared against eager.

The model is loaded exactly as ``maskserve predict`` loads it; the export itself is the
family's business: :data:`EXPORTERS` maps a family to its exporter, so another family
plugs in by adding one entry. ``--model-folder`` also writes a model folder
(``model.onnx`` + ``model.toml`` with ``backend = "onnxruntime"``) that a model
repository can serve as is.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskserve.models.base import Backend
from maskserve.models.tomlwrite import dumps
from maskserve.predict import add_model_source_arguments, load_backend

FOLDER_WEIGHTS = "model.onnx"


@dataclass
class ExportOptions:
    out: Path
    opset: int | None = None
    fp16: bool = False
    verify: bool = True


@dataclass
class ExportReport:
    """What a family's exporter reports back (printed by the command)."""

    files: list[Path]  # the main graph first, then companions that must travel with it
    exporter: str
    opset: int
    dtype: str
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    table: dict[str, Any] = field(default_factory=dict)  # the family's model.toml table


Exporter = Callable[[Backend, ExportOptions], ExportReport]


def export_yolact_backend(backend: Backend, options: ExportOptions) -> ExportReport:
    from maskserve.models.yolact.export import export_yolact

    model = getattr(getattr(backend, "predictor", None), "model", None)
    if model is None:
        raise ValueError(f"model {backend.info.name!r} is not an eager YOLACT (already ONNX?)")
    result = export_yolact(model, options.out, options.opset, options.fp16, options.verify)
    files = [result.path] + ([result.maskiou_path] if result.maskiou_path else [])
    return ExportReport(
        files=files,
        exporter=result.exporter,
        opset=result.opset,
        dtype=result.dtype,
        max_abs_diff=result.max_abs_diff,
    )


def export_maskrcnn_backend(backend: Backend, options: ExportOptions) -> ExportReport:
    from maskserve.models.maskrcnn.export import export_maskrcnn

    predictor = getattr(backend, "predictor", None)
    if predictor is None:
        raise ValueError(f"model {backend.info.name!r} is not an eager Mask R-CNN (already ONNX?)")
    if options.fp16:
        raise ValueError("Mask R-CNN exports as float32 only (--fp16 is for YOLACT)")
    result = export_maskrcnn(
        predictor.model, predictor.config, options.out, options.opset, options.verify
    )
    if result.unmatched:
        sys.stdout.write(
            f"{result.unmatched} detections without an IoU match (of {result.detections})\n"
        )
    return ExportReport(
        files=[result.path],
        exporter=result.exporter,
        opset=result.opset,
        dtype=result.dtype,
        max_abs_diff=result.max_abs_diff,
    )


EXPORTERS: dict[str, Exporter] = {
    "yolact": export_yolact_backend,
    "maskrcnn": export_maskrcnn_backend,
}


def register_exporter(family: str, exporter: Exporter) -> None:
    EXPORTERS[family] = exporter


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_source_arguments(parser)
    parser.add_argument("--out", type=Path, help="the .onnx file to write")
    parser.add_argument(
        "--opset", type=int, default=None, help="ONNX opset (default 17; 19 for deformable convs)"
    )
    parser.add_argument(
        "--fp16", action="store_true", help="float16 graph (float16 input, float32 outputs)"
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="quantise the convolutions to int8 (static, calibrated on synthetic images); "
        "prints how many detections still agree with the float graph",
    )
    parser.add_argument(
        "--calibration-images",
        type=int,
        default=32,
        help="synthetic images for the int8 calibration (default 32)",
    )
    parser.add_argument(
        "--model-folder", type=Path, help="also write DIR/model.onnx + DIR/model.toml"
    )
    parser.add_argument(
        "--no-verify", action="store_true", help="skip the eager vs onnxruntime comparison"
    )


def run(args: argparse.Namespace) -> int:
    if args.out is None and args.model_folder is None:
        raise ValueError("give --out FILE.onnx, --model-folder DIR, or both")
    if args.weights is not None and not args.weights.is_file():
        raise FileNotFoundError(f"weights file {args.weights} does not exist")
    loading = argparse.Namespace(
        weights=args.weights,
        config=args.config,
        model=args.model,
        model_repository=args.model_repository,
        device="cpu",
        fp16=False,
    )
    backend = load_backend(loading)
    family = backend.info.family
    if family not in EXPORTERS:
        raise ValueError(f"no ONNX exporter for family {family!r}; known: {sorted(EXPORTERS)}")
    out = args.out or args.model_folder / FOLDER_WEIGHTS
    if args.int8 and args.fp16:
        raise ValueError("--int8 quantises a float32 export; drop --fp16")
    options = ExportOptions(out=out, opset=args.opset, fp16=args.fp16, verify=not args.no_verify)
    stages = "trace to ONNX" + (", check against eager" if options.verify else "")
    sys.stderr.write(f"export: {backend.info.name} ({stages}; int8 steps show progress)\n")
    report = EXPORTERS[family](backend, options)
    print_report(report)
    if args.int8:
        from maskserve.export_int8 import quantize_export

        quantized = quantize_export(out, backend, report, args.calibration_images)
        sys.stdout.write("".join(line + "\n" for line in quantized.lines()))
        report.dtype = "int8"
    if args.model_folder is not None:
        write_model_folder(args.model_folder, backend, report)
        sys.stdout.write(f"model folder: {args.model_folder}\n")
    return 0


def print_report(report: ExportReport) -> None:
    write = sys.stdout.write
    write(
        f"wrote {', '.join(str(f) for f in report.files)} ({report.exporter} exporter, "
        f"opset {report.opset}, {report.dtype}); onnx.checker passed\n"
    )
    if report.max_abs_diff:
        write("max |eager - onnxruntime| per output:\n")
        for name, diff in report.max_abs_diff.items():
            write(f"  {name:<8} {diff:.3g}\n")


def write_model_folder(folder: Path, backend: Backend, report: ExportReport) -> Path:
    """``folder/model.onnx`` (+ companions, renamed alike) and a ``model.toml`` for it."""
    folder.mkdir(parents=True, exist_ok=True)
    main = report.files[0]
    target = folder / FOLDER_WEIGHTS
    for source in report.files:
        dest = folder / source.name.replace(main.stem, target.stem, 1)
        if source.resolve() != dest.resolve():
            shutil.copyfile(source, dest)
    info = backend.info
    toml = {
        "family": info.family,
        "backend": "onnxruntime",
        "weights": FOLDER_WEIGHTS,
        "description": f"{info.name} exported to ONNX ({report.dtype}, opset {report.opset})",
        "score_threshold": float(info.score_threshold),
        info.family: dict(report.table),
    }
    path = folder / "model.toml"
    path.write_text(dumps(toml))
    return path
