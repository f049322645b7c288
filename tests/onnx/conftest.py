"""Shared fixtures for the ONNX tests: the shipped model, exported once per session."""

from __future__ import annotations

import pytest

from maskserve.models.registry import ModelSpec, find_model
from maskserve.models.yolact.checkpoint import load_yolact
from maskserve.models.yolact.config_io import config_from_dict
from maskserve.models.yolact.export import ExportResult, export_yolact
from maskserve.models.yolact.network import Yolact


@pytest.fixture(scope="session")
def shipped_spec() -> ModelSpec:
    return find_model("yolact_shapes")


@pytest.fixture(scope="session")
def shipped_model(shipped_spec: ModelSpec) -> Yolact:
    return load_yolact(shipped_spec.weights, config_from_dict(shipped_spec.table))


@pytest.fixture(scope="session")
def shipped_export(shipped_model: Yolact, tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    """The shipped model exported (TorchScript exporter, opset 17) and verified."""
    return export_yolact(shipped_model, tmp_path_factory.mktemp("onnx") / "shapes.onnx")
