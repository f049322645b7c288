"""Test doubles for the server core: a deterministic fake model family and model folders.

The fake family is registered through the real registry, so model folders with
``family = "fake"`` go through the real repository, workers and batcher.  Its backend
answers each image with one detection derived from that image alone (class = first pixel
value % 3, score = value / 255, box = the whole image), so a test can tell whose answer
is whose.  A :class:`FakeControl` per folder lets a test hold batches on a
``threading.Event``, make batches fail, and see which images the model was given.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from maskserve.metrics import Metrics
from maskserve.models.base import ModelInfo
from maskserve.models.registry import ModelSpec, register_family
from maskserve.models.types import Detections
from maskserve.service import SegmentationService
from maskserve.settings import Settings
from maskserve.workers import WARMUP_GRAY

FAKE_CLASSES = ("zero", "one", "two")
# Safety bounds only: a healthy test never gets near them, but the host is shared and a
# starved process can stall for a minute, so they are generous rather than tight.
WAIT_S = 120.0
NO_TIMEOUT_S = 3600.0  # request_timeout_s for tests that are not about deadlines


@dataclass
class FakeControl:
    """What a test controls and observes of every fake backend of one model folder."""

    gate: threading.Event | None = None  # when set up, each batch waits for it
    entered: threading.Event = field(default_factory=threading.Event)
    fail_next: BaseException | None = None
    wrong_count: bool = False
    load_error: Exception | None = None
    batches: list[list[int]] = field(default_factory=list)  # first pixel values, per batch
    lock: threading.Lock = field(default_factory=threading.Lock)

    def seen(self) -> set[int]:
        with self.lock:
            return {value for batch in self.batches for value in batch}


CONTROLS: dict[str, FakeControl] = {}
_keys = itertools.count()


class FakeBackend:
    def __init__(self, spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> None:
        self.control = CONTROLS[spec.table["key"]]
        if self.control.load_error is not None:
            raise self.control.load_error
        self.info = ModelInfo(
            name=spec.name,
            family="fake",
            class_names=FAKE_CLASSES,
            input_size=16,
            device=str(device),
            dtype=str(dtype).removeprefix("torch."),
            max_detections=10,
        )
        self._warmed_up = False

    def infer(self, images: Sequence[np.ndarray], max_detections: int) -> list[Detections]:
        if not self._warmed_up or all(map(is_warmup_image, images)):
            # the worker's warm-up and batch-cost probes: answer, don't record or wait
            self._warmed_up = True
            return [fake_detections(image) for image in images]
        control = self.control
        with control.lock:
            control.batches.append([int(image[0, 0, 0]) for image in images])
        if control.gate is not None:
            control.entered.set()
            control.gate.wait(WAIT_S)
        if control.fail_next is not None:
            error, control.fail_next = control.fail_next, None
            raise error
        found = [fake_detections(image) for image in images]
        return found[:-1] if control.wrong_count else found


def is_warmup_image(image: np.ndarray) -> bool:
    """The worker's warm-up image: input_size square, every pixel WARMUP_GRAY."""
    return image.shape[:2] == (16, 16) and bool((image == WARMUP_GRAY).all())


def fake_detections(image: np.ndarray) -> Detections:
    height, width = image.shape[:2]
    value = int(image[0, 0, 0])
    return Detections(
        class_ids=torch.tensor([value % 3]),
        scores=torch.tensor([value / 255.0]),
        boxes=torch.tensor([[0.0, 0.0, float(width), float(height)]]),
        lowres_masks=torch.ones(1, 4, 4),
        proto_windows=torch.tensor([[0, 0, 4, 4]]),
        image_size=(height, width),
        class_names=FAKE_CLASSES,
    )


register_family("fake", FakeBackend)


def write_fake_model(root: Path, name: str, extra_toml: str = "") -> FakeControl:
    """A ``family = "fake"`` folder under ``root`` and the control its backends obey."""
    key = f"{name}-{next(_keys)}"
    control = CONTROLS[key] = FakeControl()
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"\0")
    (folder / "model.toml").write_text(
        f'family = "fake"\nweights = "weights.bin"\n{extra_toml}\n[fake]\nkey = "{key}"\n'
    )
    return control


async def until(condition: Callable[[], bool], probe_s: float = 0.001) -> None:
    """Readiness probe: return once ``condition()`` holds (callers bound it with wait_for)."""
    while not condition():
        await asyncio.sleep(probe_s)


def png(value: int, width: int = 24, height: int = 16) -> bytes:
    """A solid-colour PNG whose first pixel value identifies it."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), value, dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@asynccontextmanager
async def serving(root: Path, **settings: Any) -> AsyncIterator[SegmentationService]:
    """A started service over ``root`` (fake models), stopped on exit."""
    settings.setdefault("request_timeout_s", NO_TIMEOUT_S)
    # the fake model costs nothing: batch sizes chosen from its timings would be noise
    settings.setdefault("adaptive_batching", False)
    service = SegmentationService(
        Settings(model_repository=root, devices=["cpu"], **settings), Metrics(gpu=False)
    )
    await service.start()
    try:
        yield service
    finally:
        await service.stop()
