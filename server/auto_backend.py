"""``backend = "auto"``: export to ONNX once, check it, and serve whichever is faster.

A model folder that says ``backend = "auto"`` is loaded eagerly first (its weights may be
an original dbolya/yolact checkpoint or a torchvision Mask R-CNN ``.pth``). Then, on CPU:

1. **Export, cached**: ``<weights folder>/.maskserve-cache/<key>/`` holds the exported
   model folder, where ``key`` hashes the weights' bytes, the family table and the
   exporter's versions (maskserve, torch, onnx), so a changed checkpoint or a new
   exporter re-exports and an unchanged one loads in a second.  Written to a temporary
   folder and renamed, so a crash never leaves half a cache entry.
2. **Parity** on a synthetic warm-up image: the same detections above the model's score
   threshold, boxes within 0.5 px, every mask IoU >= 0.99 at the model's mask resolution.
   A mismatch keeps eager and logs why.
3. **Speed**: both run the same warm-up batch in alternating rounds; the faster (median)
   is served.  The choice, both rates and the reason are in ``ModelInfo.extra`` (so in
   ``GET /v1/models/{m}``).

Not the default: the checks cost seconds per load (the export, on the first load, more).
CUDA devices keep eager (the GPU comparison was not measurable here).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import statistics
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch

from maskserve.models.base import Backend
from maskserve.models.onnxrt.quantize import synthetic_images
from maskserve.models.registry import ModelSpec, build_backend
from maskserve.models.types import Detections

log = logging.getLogger(__name__)

AUTO = "auto"
CACHE_DIR = ".maskserve-cache"
TIMING_ROUNDS = 3
BOX_TOLERANCE_PX = 0.5
MIN_MASK_IOU = 0.99


def build_any(spec: ModelSpec, device: torch.device | str, dtype: torch.dtype) -> Backend:
    """The registry's backend, or for ``backend = "auto"`` the faster verified one."""
    if spec.settings.get("backend") != AUTO:
        return build_backend(spec, device, dtype)
    eager_spec = dataclasses.replace(spec, settings={**spec.settings, "backend": "torch"})
    eager = build_backend(eager_spec, device, dtype)
    if torch.device(device).type != "cpu":
        return _chosen(eager, "torch", "auto compares backends on CPU only")
    try:
        folder, cache = exported_folder(spec, eager)
        onnx_spec = dataclasses.replace(ModelSpec.from_folder(folder), name=spec.name)
        onnx = build_backend(onnx_spec, device, torch.float32)
    except Exception as exc:  # an export that fails must not stop the model from serving
        log.warning("%s: auto backend keeps torch: export failed: %s", spec.name, exc)
        return _chosen(eager, "torch", f"ONNX export failed: {type(exc).__name__}")
    return choose(eager, onnx, cache)


def choose(eager: Backend, onnx: Backend, cache: str) -> Backend:
    """Parity first, then the faster of the two on the same warm-up batch."""
    image = synthetic_images(1, seed=11)[0]
    with torch.inference_mode():
        problem = parity_problem(
            eager.infer([image], 100)[0], onnx.infer([image], 100)[0], eager.info.score_threshold
        )
        if problem is not None:
            log.warning("%s: auto backend keeps torch: %s", eager.info.name, problem)
            return _chosen(eager, "torch", f"ONNX parity failed: {problem}", cache=cache)
        rates = images_per_second({"torch": eager, "onnxruntime": onnx}, [image, image])
    winner = max(rates, key=rates.__getitem__)
    backend = onnx if winner == "onnxruntime" else eager
    text = ", ".join(f"{name} {rate:.1f} img/s" for name, rate in rates.items())
    log.info("%s: auto backend serves %s (%s)", eager.info.name, winner, text)
    return _chosen(backend, winner, f"faster at warm-up: {text}", cache=cache)


def _chosen(backend: Backend, kind: str, reason: str, cache: str = "") -> Backend:
    extra = {**backend.info.extra, "backend": kind, "auto": reason}
    if cache:
        extra["auto_cache"] = cache
    backend.info = dataclasses.replace(backend.info, extra=extra)
    return backend


def parity_problem(want: Detections, got: Detections, threshold: float) -> str | None:
    """None when ``got`` has ``want``'s detections above ``threshold``, else what differs."""
    keep_w, keep_g = want.scores >= threshold, got.scores >= threshold
    if int(keep_w.sum()) != int(keep_g.sum()):
        return f"{int(keep_w.sum())} vs {int(keep_g.sum())} detections"
    if not torch.equal(want.class_ids[keep_w], got.class_ids[keep_g]):
        return "classes differ"
    gap = (want.boxes[keep_w] - got.boxes[keep_g]).abs().max().item() if keep_w.any() else 0.0
    if gap > BOX_TOLERANCE_PX:
        return f"boxes differ by {gap:.2f} px"
    for a, b in zip(_masks(want)[keep_w], _masks(got)[keep_g], strict=True):
        union = int((a | b).sum())
        if union and int((a & b).sum()) / union < MIN_MASK_IOU:
            return "a mask IoU is below 0.99"
    return None


def _masks(found: Detections) -> torch.Tensor:
    soft = found.lowres_masks if found.lowres_masks is not None else found.box_masks
    if soft is None:
        return torch.zeros((len(found.scores), 1, 1), dtype=torch.bool)
    return soft.float() > found.mask_threshold


def images_per_second(backends: dict[str, Backend], images: list[np.ndarray]) -> dict[str, float]:
    """Median img/s of each backend on ``images``, rounds alternating their order."""
    for backend in backends.values():
        backend.infer(images, 100)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in backends}
    names = list(backends)
    for number in range(TIMING_ROUNDS):
        for name in names[number % 2 :] + names[: number % 2]:
            began = time.perf_counter()
            backends[name].infer(images, 100)
            times[name].append(time.perf_counter() - began)
    return {name: len(images) / statistics.median(values) for name, values in times.items()}


def cache_key(spec: ModelSpec) -> str:
    digest = hashlib.sha256()
    with spec.weights.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    digest.update(json.dumps(spec.table, sort_keys=True, default=str).encode())
    digest.update(_exporter_versions().encode())
    return digest.hexdigest()[:20]


def _exporter_versions() -> str:
    try:
        ours = version("maskserve")
    except PackageNotFoundError:
        ours = "dev"
    import onnx

    return f"maskserve {ours}; torch {torch.__version__}; onnx {onnx.__version__}"


def exported_folder(spec: ModelSpec, eager: Backend) -> tuple[Path, str]:
    """The cached export folder for ``spec`` (built now if missing) and "hit"/"built"."""
    from maskserve.export import EXPORTERS, ExportOptions, write_model_folder

    root = spec.weights.parent / CACHE_DIR
    folder = root / cache_key(spec)
    if (folder / "model.toml").is_file():
        return folder, "hit"
    if spec.family not in EXPORTERS:
        raise ValueError(f"no ONNX exporter for family {spec.family!r}")
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="export-", dir=root))
    try:
        options = ExportOptions(out=staging / "graph.onnx", verify=False)  # parity is ours
        write_model_folder(staging / "folder", eager, EXPORTERS[spec.family](eager, options))
        try:
            os.replace(staging / "folder", folder)
        except OSError:  # another worker finished the same export first
            if not (folder / "model.toml").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder, "built"
