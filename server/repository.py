"""The model repository: one folder per model, read fail-soft.

Like Triton's, ``<repository>/<name>/model.toml`` (+ weights) describes each model.  A
folder that cannot be used — no or invalid ``model.toml``, bad ``[batching]`` values,
missing weights — is logged with its reason and recorded in ``failures``; every other
model is still served.  Checkpoint errors surface later, when workers build backends,
and are recorded the same way by the service.
"""

from __future__ import annotations

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
        folders = [root / name for name in settings.models]
    for folder in folders:
        _read_folder(folder, settings, scan)
    return scan


def _read_folder(folder: Path, settings: Settings, scan: RepositoryScan) -> None:
    source = str(folder / "model.toml")
    try:
        if not folder.is_dir():
            raise FileNotFoundError(f"no folder {folder.name!r} in {folder.parent}")
        spec = ModelSpec.from_folder(folder)
        if not spec.weights.is_file():
            raise FileNotFoundError(f"weights file {spec.weights} does not exist")
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
