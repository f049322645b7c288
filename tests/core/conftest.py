"""Fixtures for the server core (the fake model family lives in core_fakes.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_yolact_repository(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A repository holding a random-weight YOLACT (real loader, real network)."""
    from maskserve.models.training.train_yolact import shapes_config, write_model
    from maskserve.models.yolact.network import Yolact

    root = tmp_path_factory.mktemp("repo")
    torch.manual_seed(0)
    write_model(Yolact(shapes_config()), root / "tiny")
    yield root
