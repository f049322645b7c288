"""backend = "auto": cached export, parity before speed, and a reason for every choice."""

from __future__ import annotations

import dataclasses
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from maskserve import export
from maskserve.auto_backend import CACHE_DIR, build_any, cache_key, parity_problem
from maskserve.models.registry import ModelSpec, build_backend, find_model
from maskserve.models.tomlwrite import dumps


def auto_folder(tmp_path: Path, model: str) -> Path:
    """A copy of a shipped model folder whose model.toml says backend = "auto"."""
    source = find_model(model).folder
    folder = tmp_path / f"{model}_auto"
    shutil.copytree(source, folder)
    toml = tomllib.loads((folder / "model.toml").read_text())
    (folder / "model.toml").write_text(dumps({**toml, "backend": "auto"}))
    return folder


def example() -> np.ndarray:
    path = find_model("yolact_shapes").folder / "example.png"
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.mark.slow
@pytest.mark.parametrize("model", ["yolact_shapes", "maskrcnn_shapes"])
def test_auto_exports_once_checks_parity_and_says_what_it_chose(tmp_path: Path, model: str) -> None:
    spec = ModelSpec.from_folder(auto_folder(tmp_path, model))
    first = build_any(spec, "cpu", torch.float32)
    extra = first.info.extra
    assert extra["auto_cache"] == "built" and extra["backend"] in ("torch", "onnxruntime")
    assert "faster at warm-up" in extra["auto"], extra["auto"]
    assert "torch" in extra["auto"] and "onnxruntime" in extra["auto"]
    assert first.info.name == spec.name
    cached = list((spec.weights.parent / CACHE_DIR).iterdir())
    assert [p.name for p in cached] == [cache_key(spec)]
    again = build_any(spec, "cpu", torch.float32)
    assert again.info.extra["auto_cache"] == "hit"
    eager = build_backend(find_model(model), "cpu")
    with torch.inference_mode():
        want = eager.infer([example()], 100)[0]
        got = again.infer([example()], 100)[0]
    assert parity_problem(want, got, eager.info.score_threshold) is None


def test_parity_catches_moved_boxes_and_missing_detections() -> None:
    eager = build_backend(find_model("yolact_shapes"), "cpu")
    with torch.inference_mode():
        found = eager.infer([example()], 100)[0]
    threshold = eager.info.score_threshold
    assert int((found.scores >= threshold).sum()) >= 3
    assert parity_problem(found, found, threshold) is None
    moved = dataclasses.replace(found, boxes=found.boxes + 1.0)
    assert "boxes differ" in (parity_problem(found, moved, threshold) or "")
    fewer = dataclasses.replace(found, scores=found.scores * 0.0)
    assert "detections" in (parity_problem(found, fewer, threshold) or "")


def test_the_cache_key_follows_the_weights(tmp_path: Path) -> None:
    spec = ModelSpec.from_folder(auto_folder(tmp_path, "yolact_shapes"))
    before = cache_key(spec)
    with spec.weights.open("ab") as handle:
        handle.write(b"\0")
    assert cache_key(spec) != before


def test_a_failing_export_keeps_the_eager_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(backend: object, options: export.ExportOptions) -> export.ExportReport:
        raise RuntimeError("exporter exploded")

    monkeypatch.setitem(export.EXPORTERS, "yolact", broken)
    spec = ModelSpec.from_folder(auto_folder(tmp_path, "yolact_shapes"))
    backend = build_any(spec, "cpu", torch.float32)
    assert backend.info.extra["backend"] == "torch"
    assert "export failed" in backend.info.extra["auto"]
    assert not any((spec.weights.parent / CACHE_DIR).glob("*/model.toml"))
