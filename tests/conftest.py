"""Shared fixtures: the shipped model, loaded once per test session; the server harness."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from maskserve.models.base import Backend
from maskserve.models.registry import DEFAULT_MODEL, ZOO_DIR, build_backend, find_model


@pytest.fixture(scope="session")
def shipped_backend() -> Backend:
    if not (ZOO_DIR / DEFAULT_MODEL / "model.toml").is_file():
        pytest.fail(f"the shipped model {DEFAULT_MODEL} is missing from {ZOO_DIR}")
    return build_backend(find_model(DEFAULT_MODEL), "cpu")


HARNESS = Path(__file__).resolve().parent / "api" / "api_harness.py"


@pytest.fixture(scope="session")
def api_harness() -> ModuleType:
    """The protocol tests' real-server harness (``tests/api/api_harness.py``), loaded by
    path for the other folders' tests (``tests`` is not a package)."""
    if "api_harness" not in sys.modules:
        spec = importlib.util.spec_from_file_location("api_harness", HARNESS)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["api_harness"] = module
        spec.loader.exec_module(module)
    return sys.modules["api_harness"]
