"""Shared fixtures: the shipped model, loaded once per test session."""

from __future__ import annotations

import pytest

from maskserve.models.base import Backend
from maskserve.models.registry import DEFAULT_MODEL, ZOO_DIR, build_backend, find_model


@pytest.fixture(scope="session")
def shipped_backend() -> Backend:
    if not (ZOO_DIR / DEFAULT_MODEL / "model.toml").is_file():
        pytest.fail(f"the shipped model {DEFAULT_MODEL} is missing from {ZOO_DIR}")
    return build_backend(find_model(DEFAULT_MODEL), "cpu")
