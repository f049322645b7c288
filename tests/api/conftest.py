"""Fixtures of the protocol tests: a model repository, test images, a running server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from api_harness import (
    BODY_LIMIT,
    GRPC_MESSAGE_LIMIT,
    HAS_SHIPPED,
    MODEL,
    PIXEL_LIMIT,
    SHIPPED,
    RunningServer,
    encode,
    running_server,
    server_settings,
)


@pytest.fixture(scope="session")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shipped model (a snapshot: nothing rewrites it mid-test), else a
    random-weight YOLACT of the same layout under the same name."""
    root = tmp_path_factory.mktemp("api_repo")
    if HAS_SHIPPED:
        shutil.copytree(SHIPPED, root / MODEL)
    else:
        from maskserve.models.training.train_yolact import shapes_config, write_model
        from maskserve.models.yolact.network import Yolact

        torch.manual_seed(0)
        write_model(Yolact(shapes_config()), root / MODEL)
    return root


@pytest.fixture(scope="session")
def pixels() -> np.ndarray:
    """A synthetic shapes scene (what the shipped model was trained on)."""
    from maskserve.models.synthetic.generator import generate_sample

    return generate_sample(np.random.default_rng(20240607), 240, 320, max_objects=5).image


@pytest.fixture(scope="session")
def png(pixels: np.ndarray) -> bytes:
    return encode(pixels, "PNG")


@pytest.fixture(scope="session")
def jpeg(pixels: np.ndarray) -> bytes:
    return encode(pixels, "JPEG")


@pytest.fixture(scope="session")
def server(repository: Path) -> Iterator[RunningServer]:
    """The shared server: default batching, small size limits for the tests."""
    settings = server_settings(
        repository,
        max_body_bytes=BODY_LIMIT,
        max_pixels=PIXEL_LIMIT,
        grpc_max_message_bytes=GRPC_MESSAGE_LIMIT,
    )
    with running_server(settings) as running:
        yield running
