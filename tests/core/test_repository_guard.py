"""The model repository refuses names and paths that lead outside it, and unsafe weights."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest

from maskserve.models.registry import ZOO_DIR, find_model
from maskserve.repository import RepositoryScan, scan_repository
from maskserve.settings import Settings

SHIPPED = ZOO_DIR / "yolact_shapes"


def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    return root


def scan(root: Path, models: list[str] | None = None) -> RepositoryScan:
    return scan_repository(Settings(model_repository=root, models=models, devices=["cpu"]))


@pytest.mark.parametrize("name", ["..", "../outside", "a/b", "."])
def test_names_that_are_not_one_folder_are_refused(tmp_path: Path, name: str) -> None:
    result = scan(repo(tmp_path), [name])
    assert not result.entries
    assert "invalid model name" in result.failures[name]
    with pytest.raises(KeyError, match="invalid model name"):
        find_model(name, tmp_path)


def test_a_symlinked_folder_outside_is_refused(tmp_path: Path) -> None:
    root = repo(tmp_path)
    outside = tmp_path / "elsewhere"
    shutil.copytree(SHIPPED, outside)
    (root / "linked").symlink_to(outside, target_is_directory=True)
    result = scan(root)
    assert "leads outside the model repository" in result.failures["linked"]
    assert str(tmp_path) not in result.failures["linked"]  # no absolute paths in messages


def test_weights_outside_the_repository_are_refused(tmp_path: Path) -> None:
    root = repo(tmp_path)
    folder = root / "m"
    shutil.copytree(SHIPPED, folder)
    (tmp_path / "w.safetensors").write_bytes((folder / "weights.safetensors").read_bytes())
    (folder / "weights.safetensors").unlink()
    (folder / "weights.safetensors").symlink_to(tmp_path / "w.safetensors")
    assert "leads outside" in scan(root).failures["m"]
    toml = (folder / "model.toml").read_text()
    (folder / "model.toml").write_text(
        toml.replace('weights = "weights.safetensors"', 'weights = "../../w.safetensors"')
    )
    assert "leads outside" in scan(root).failures["m"]


class Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("code ran",))


def test_a_pickle_with_code_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    from maskserve.models.registry import ModelSpec, build_backend

    folder = tmp_path / "m"
    shutil.copytree(SHIPPED, folder)
    (folder / "weights.pth").write_bytes(pickle.dumps({"x": Boom()}))
    toml = (folder / "model.toml").read_text()
    (folder / "model.toml").write_text(
        toml.replace('weights = "weights.safetensors"', 'weights = "weights.pth"')
    )
    with pytest.raises(Exception) as refused:
        build_backend(ModelSpec.from_folder(folder))
    assert "weights_only" in str(refused.value) or "Unsupported" in str(refused.value)


def _onnx_folder(root: Path, name: str, raw: str, weights: str = "model.onnx") -> None:
    folder = root / name
    folder.mkdir()
    (folder / weights).write_bytes(b"not read by the scan")
    (folder / "model.toml").write_text(
        f'family = "yoloseg"\nweights = "{weights}"\nraw = {raw}\n\n[yoloseg]\n'
    )


def test_raw_true_serves_the_onnx_file_also_as_a_tensor_model(tmp_path: Path) -> None:
    root = repo(tmp_path)
    _onnx_folder(root, "yolo", "true")
    _onnx_folder(root, "plain", "false")
    result = scan(root)
    assert sorted(result.entries) == ["plain", "yolo", "yolo_raw"]
    twin = result.entries["yolo_raw"].spec
    assert (twin.family, twin.weights) == ("raw", result.entries["yolo"].spec.weights)
    assert result.entries["yolo"].spec.family == "yoloseg"


@pytest.mark.parametrize(
    ("raw", "weights", "reason"),
    [('"yes"', "model.onnx", "raw must be true or false"), ("true", "w.pt", "needs an ONNX")],
)
def test_a_raw_twin_that_cannot_be_is_a_failure(
    tmp_path: Path, raw: str, weights: str, reason: str
) -> None:
    root = repo(tmp_path)
    _onnx_folder(root, "yolo", raw, weights)
    result = scan(root)
    assert "yolo" in result.entries and "yolo_raw" not in result.entries
    assert reason in result.failures["yolo_raw"]
