"""``maskserve export --int8``: a quantised model folder that serves the same objects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from maskserve.cli import main
from maskserve.models.registry import ZOO_DIR, ModelSpec, build_backend

SHIPPED = ZOO_DIR / "yolact_shapes"


@pytest.mark.skipif(not (SHIPPED / "model.toml").is_file(), reason="needs the shipped model")
def test_int8_folder_finds_the_float_models_confident_objects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "int8"
    argv = ["export", "--model", "yolact_shapes", "--model-folder", str(folder)]
    assert main([*argv, "--int8", "--calibration-images", "2"]) == 0
    assert "convolutions quantised" in capsys.readouterr().out
    image = np.asarray(Image.open(SHIPPED / "example.png").convert("RGB"))
    float_found = build_backend(ModelSpec.from_folder(SHIPPED)).infer([image], 100)[0]
    int8 = build_backend(ModelSpec.from_folder(folder), torch.device("cpu"))
    int8_found = int8.infer([image], 100)[0]
    confident = float_found.scores > 0.8
    assert int(confident.sum()) >= 3
    for cls, box in zip(
        float_found.class_ids[confident], float_found.boxes[confident], strict=True
    ):
        near = (int8_found.class_ids == cls) & ((int8_found.boxes - box).abs().amax(dim=1) <= 4)
        assert bool(near.any()), f"class {int(cls)} at {box.tolist()} lost in int8"
