"""The model repository: one folder per model, read fail-soft.

Like Triton's, ``<repository>/<name>/model.toml`` (+ weights) describes each model.  A
folder that cannot be used — no or invalid ``model.toml``, bad ``[batching]`` values,
missing weights — is logged with its reason and recorded in ``failures``; every other
model is still served.  Checkpoint errors surface later, when workers build backends,
and are recorded the same way by the service.  A folder whose ``model.toml`` says
``raw = true`` (an ONNX file) is served twice: by its family, and as the plain tensor
model ``<name>_raw`` (family ``raw``, :mod:`maskserve.models.raw`).
"""

from __future__ import annotations

import dataclasses
import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from maskserve.models.registry import ModelSpec
from maskserve.settings import ModelSettings, Settings, SettingsError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelEntry:
    """A model folder that parsed: its spec and effective per-model settings."""

    spec: ModelSpec
    config: ModelSettings

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass
class RepositoryScan:
    """The usable models and, by name, why the others cannot be loaded."""

    entries: dict[str, ModelEntry] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def fail(self, name: str, reason: str) -> None:
        log.error("model %r failed to load: %s", name, reason)
        self.failures[name] = reason


def scan_repository(settings: Settings) -> RepositoryScan:
    """Read every model folder (or those in ``settings.models``) without building weights."""
    root = settings.model_repository
    scan = RepositoryScan()
    if not root.is_dir():
        log.error("model repository %s is not a folder; no models to serve", root)
        for name in settings.models or []:
            scan.fail(name, f"model repository {root} does not exist")
        return scan
    if settings.models is None:
        folders = sorted(
            p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
        )
    else:
        folders = []
        for name in settings.models:
            try:
                folders.append(root / check_model_name(name))
            except ValueError as exc:
                scan.fail(name, str(exc))
    for folder in folders:
        _read_folder(folder, settings, scan)
    return scan


def check_model_name(name: str) -> str:
    """A model name is one folder name: no path separators, no ``.``/``..``."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(f"invalid model name {name!r}: it must be one folder name")
    return name


def _inside(path: Path, root: Path, what: str, model: str) -> None:
    """Refuse ``path`` if it resolves (symlinks followed) outside the repository."""
    if not path.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"model {model!r}: its {what} leads outside the model repository")


def _read_folder(folder: Path, settings: Settings, scan: RepositoryScan) -> None:
    source = str(folder / "model.toml")
    try:
        if not folder.is_dir():
            raise FileNotFoundError(f"no folder {folder.name!r} in the model repository")
        root = settings.model_repository
        _inside(folder, root, "folder", folder.name)
        spec = ModelSpec.from_folder(folder)
        _inside(spec.weights, root, "weights file", spec.name)
        if not spec.weights.is_file():
            shown = spec.weights.relative_to(root) if spec.weights.is_relative_to(root) else "?"
            raise FileNotFoundError(f"model {spec.name!r}: weights file {shown} does not exist")
        config = ModelSettings.resolve(spec.settings, settings, source)
    except tomllib.TOMLDecodeError as exc:
        scan.fail(folder.name, f"{source}: invalid TOML: {exc}")
        return
    except (OSError, ValueError, KeyError, TypeError, SettingsError) as exc:
        scan.fail(folder.name, str(exc))
        return
    if spec.name in scan.entries:
        scan.fail(spec.name, f"{folder} declares the name {spec.name!r} a second time")
        return
    scan.entries[spec.name] = ModelEntry(spec=spec, config=config)
    raw = spec.settings.get("raw", False)
    if raw is not False:
        _add_raw_twin(ModelEntry(spec=spec, config=config), raw, source, scan)


RAW_SUFFIX = "_raw"


def _add_raw_twin(entry: ModelEntry, raw: object, source: str, scan: RepositoryScan) -> None:
    """``raw = true``: the same ONNX file, also served as the tensor model it is."""
    spec = entry.spec
    name = spec.name + RAW_SUFFIX
    if raw is not True:
        scan.fail(name, f"{source}: raw must be true or false, got {raw!r}")
    elif spec.weights.suffix.lower() != ".onnx":
        scan.fail(name, f"{source}: raw = true needs an ONNX weights file, not {spec.weights.name}")
    elif name in scan.entries:
        scan.fail(name, f"{source}: the name {name!r} is taken by another model")
    else:
        twin = dataclasses.replace(spec, name=name, family="raw", table={}, settings={})
        scan.entries[name] = ModelEntry(spec=twin, config=entry.config)
