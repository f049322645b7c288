"""Fake YOLO-seg ONNX exports, built once per session (the fakes live in yoloseg_fakes.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from yoloseg_fakes import FakeYoloSeg, Scene, default_scenes, export


@pytest.fixture(scope="session")
def scenes() -> list[Scene]:
    return default_scenes()


@pytest.fixture(scope="session")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("yoloseg")


@pytest.fixture(scope="session")
def dynamic_onnx(onnx_dir: Path, scenes: list[Scene]) -> Path:
    """Dense head, dynamic batch axis."""
    return export(FakeYoloSeg(scenes), onnx_dir / "dynamic.onnx", dynamic_batch=True)


@pytest.fixture(scope="session")
def static_onnx(onnx_dir: Path, scenes: list[Scene]) -> Path:
    """Dense head, batch fixed to 1 (served one image per session call)."""
    return export(FakeYoloSeg(scenes), onnx_dir / "static.onnx", dynamic_batch=False)
