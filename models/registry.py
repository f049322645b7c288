"""Model folders (``model.toml`` + weights) and the registry of model families.

A model folder looks like Triton's: ``<repository>/<name>/model.toml`` naming the family,
the weights file beside it, and the family's own table (e.g. ``[yolact]``). Adding a
family means registering one factory here from its own folder; nothing else changes.
"""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from maskserve.models.base import Backend

ZOO_DIR = Path(__file__).resolve().parent / "zoo"
DEFAULT_MODEL = "yolact_shapes"

BackendFactory = Callable[["ModelSpec", torch.device, torch.dtype], Backend]
_FAMILIES: dict[str, BackendFactory] = {}


@dataclass
class ModelSpec:
    """A parsed ``model.toml``."""

    name: str
    folder: Path
    family: str
    weights: Path
    table: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_folder(cls, folder: Path) -> ModelSpec:
        path = folder / "model.toml"
        if not path.is_file():
            raise FileNotFoundError(f"{folder} has no model.toml")
        data = tomllib.loads(path.read_text())
        family = data.get("family")
        if family not in data:
            raise ValueError(f'{path}: expected family = "…" and a [{family}] table')
        weights = folder / data.get("weights", "weights.safetensors")
        known = {"family", "weights", family}
        return cls(
            name=data.get("name", folder.name),
            folder=folder,
            family=family,
            weights=weights,
            table=data[family],
            settings={k: v for k, v in data.items() if k not in known},
        )


def register_family(family: str, factory: BackendFactory) -> None:
    _FAMILIES[family] = factory


def build_backend(
    spec: ModelSpec,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    **options: Any,
) -> Backend:
    """Instantiate ``spec`` on ``device`` through its family's factory; ``options`` go to
    the factory (e.g. ``channels_last=False`` for the eager families' NCHW reference path)."""
    _register_builtin_family(spec.family)
    if spec.family not in _FAMILIES:
        known = sorted(set(_FAMILIES) | set(_BUILTIN_FAMILIES))
        raise ValueError(f"model {spec.name!r}: unknown family {spec.family!r}; known: {known}")
    return _FAMILIES[spec.family](spec, torch.device(device), dtype, **options)


def find_model(name: str, repository: Path | None = None) -> ModelSpec:
    """The folder ``name`` in ``repository`` (else the shipped zoo)."""
    root = repository or ZOO_DIR
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise KeyError(f"invalid model name {name!r}: it must be one folder name")
    folder = root / name
    if not (folder / "model.toml").is_file():
        known = ", ".join(list_models(root)) or "none"
        raise KeyError(f"unknown model {name!r} in {root}; available: {known}")
    return ModelSpec.from_folder(folder)


def list_models(repository: Path | None = None) -> list[str]:
    root = repository or ZOO_DIR
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "model.toml").is_file())


# The shipped families, imported only when a model of that family is built.
_BUILTIN_FAMILIES: dict[str, tuple[str, str]] = {
    "yolact": (".yolact.backend", "yolact_backend_factory"),
    "yoloseg": (".yoloseg.backend", "yoloseg_backend_factory"),
    "maskrcnn": (".maskrcnn.backend", "maskrcnn_backend_factory"),
    "raw": (".raw.backend", "raw_backend_factory"),
}


def _register_builtin_family(family: str) -> None:
    if family in _FAMILIES or family not in _BUILTIN_FAMILIES:
        return
    module_name, factory = _BUILTIN_FAMILIES[family]
    module = importlib.import_module(module_name, __package__)
    register_family(family, getattr(module, factory))
