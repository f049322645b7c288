"""A real maskserve on 127.0.0.1 serving the shipped model, for the page's tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from api_harness import HAS_SHIPPED, MODEL, RunningServer, running_server  # noqa: E402
from api_harness import server_settings  # noqa: E402

from maskserve.models.registry import ZOO_DIR  # noqa: E402

__all__ = ["MODEL"]


@pytest.fixture(scope="module")
def web_server() -> Iterator[RunningServer]:
    if not HAS_SHIPPED:
        pytest.skip("needs the shipped model (the page test checks real masks)")
    with running_server(server_settings(ZOO_DIR, models=[MODEL])) as server:
        yield server
