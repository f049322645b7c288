"""What every maskserve ONNX export carries in ``metadata_props``, and how it is written.

A backend rebuilds a model from the file alone, so each export stores its family, class
names and full config (JSON); the family adds its own keys on top of :func:`base_metadata`
and reads its config back with :func:`read_config`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TypeVar

import onnx
import torch

from maskserve.models.onnxrt.session import OrtError

Config = TypeVar("Config")


def producer(exporter: str) -> str:
    """``maskserve <version> (torch <version>, <exporter> exporter)``."""
    try:
        name = f"maskserve {version('maskserve')}"
    except PackageNotFoundError:
        name = "maskserve"
    return f"{name} (torch {torch.__version__}, {exporter} exporter)"


def base_metadata(
    family: str,
    class_names: Sequence[str],
    config: dict[str, Any],
    config_name: str,
    exporter: str,
) -> dict[str, str]:
    """The keys every family writes: family, class names, config (JSON), producer."""
    return {
        "maskserve_family": family,
        "class_names": json.dumps(list(class_names)),
        "config": json.dumps(config),
        "config_name": config_name,
        "producer": producer(exporter),
    }


def write_metadata(path: Path, metadata: dict[str, str]) -> onnx.ModelProto:
    """Set ``metadata_props`` (replacing same-named entries), save, and run the checker."""
    proto = onnx.load(str(path))
    kept = [p for p in proto.metadata_props if p.key not in metadata]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    proto.producer_name = "maskserve"
    onnx.save(proto, str(path))
    onnx.checker.check_model(str(path))
    return proto


def read_config(
    metadata: Mapping[str, str],
    source: Path | str,
    family: str,
    label: str,
    parse: Callable[[dict[str, Any]], Config],
) -> Config:
    """The config an export of ``family`` stored, parsed; else a clear :class:`OrtError`
    (``label`` names the family in messages, e.g. "Mask R-CNN")."""
    found = metadata.get("maskserve_family")
    if found != family:
        raise OrtError(
            f"{source}: not a maskserve {label} export (maskserve_family={found!r}); "
            "export it with `maskserve export`"
        )
    try:
        return parse(json.loads(metadata["config"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise OrtError(f"{source}: unreadable {label} config in the ONNX metadata: {exc}") from exc
