"""``maskserve serve`` with one extra model family, ``gated``, for the signal tests.

Run as ``python gated_serve.py serve ...``: it registers the family and hands the argument
list to maskserve's own CLI, so the process under test is the real server. A gated model
blocks, at the stage its ``model.toml`` names, on opening a FIFO nobody writes to: a model
load or a forward pass that never ends. It stands in for a slow start-up or a long batch,
so a test can send its signal while the server is provably in that state, with no timing.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from maskserve.models.base import ModelInfo
from maskserve.models.registry import ModelSpec, register_family
from maskserve.models.types import Detections

CLASSES = ("thing",)
STAGES = ("load", "infer")


def write_gated_model(root: Path, name: str, stage: str) -> Path:
    """A ``family = "gated"`` folder under ``root``; returns the FIFO it blocks on."""
    import os

    assert stage in STAGES, stage
    folder = root / name
    folder.mkdir(parents=True)
    gate = folder / "gate.fifo"
    os.mkfifo(gate)
    (folder / "weights.bin").write_bytes(b"\0")
    (folder / "model.toml").write_text(
        f'family = "gated"\nweights = "weights.bin"\n\n[gated]\nstage = "{stage}"\n'
        f'gate = "{gate}"\n'
    )
    return gate


def _block(gate: str) -> None:
    """Open the FIFO for reading: blocks until a writer opens it (none does)."""
    with open(gate, "rb") as fifo:
        fifo.read()


class GatedBackend:
    def __init__(self, spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> None:
        self._stage = spec.table["stage"]
        self._gate = spec.table["gate"]
        if self._stage == "load":
            _block(self._gate)
        self.info = ModelInfo(
            name=spec.name,
            family="gated",
            class_names=CLASSES,
            input_size=16,
            device=str(device),
            dtype=str(dtype).removeprefix("torch."),
        )
        self._calls = 0

    def infer(self, images: Sequence[np.ndarray], max_detections: int) -> list[Detections]:
        self._calls += 1
        if self._stage == "infer" and self._calls > 1:  # the first call is the warm-up
            _block(self._gate)
        return [_nothing(image) for image in images]


def _nothing(image: np.ndarray) -> Detections:
    height, width = image.shape[:2]
    return Detections(
        class_ids=torch.zeros(0, dtype=torch.long),
        scores=torch.zeros(0),
        boxes=torch.zeros(0, 4),
        lowres_masks=torch.zeros(0, 4, 4),
        proto_windows=torch.zeros(0, 4, dtype=torch.long),
        image_size=(height, width),
        class_names=CLASSES,
    )


if __name__ == "__main__":
    register_family("gated", GatedBackend)
    from maskserve.cli import main

    sys.exit(main(sys.argv[1:]))
