"""Server settings: CLI flags > ``MASKSERVE_*`` environment > TOML config file > defaults.

Every value passes through one converter and one validator whatever its source, so a bad
value fails at start-up with a message naming where it came from (``MASKSERVE_PORT=abc``,
``config.toml: max_batch_size``, ``--max-batch-size``).

A model folder's ``model.toml`` may override the batching defaults for that model::

    score_threshold = 0.3
    instances = 2                # workers per device for this model

    [batching]
    max_batch_size = 16
    max_queue_delay_ms = 2.0
    max_queue_size = 128
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import torch

from maskserve.models.registry import ZOO_DIR

ENV_PREFIX = "MASKSERVE_"
CONFIG_ENV = "MASKSERVE_CONFIG"
MIB = 1 << 20

LogFormat = Literal["text", "json"]
OverloadStatus = Literal["unavailable", "resource_exhausted"]
DTypeName = Literal["float32", "float16"]
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16}


class SettingsError(ValueError):
    """A setting is missing, malformed or out of range; the message names its source."""


def default_devices() -> list[str]:
    return ["cuda:0"] if torch.cuda.is_available() else ["cpu"]


@dataclass
class Settings:
    """Server-wide settings; each field is also ``MASKSERVE_<FIELD>`` and a config-file key.

    Lists (``models``, ``devices``) are comma-separated in the environment.  In the TOML
    file the batching keys may sit at the top level or in a ``[batching]`` table.
    """

    model_repository: Path = ZOO_DIR
    models: list[str] | None = None
    devices: list[str] = field(default_factory=default_devices)
    workers_per_device: int = 1
    max_batch_size: int = 8
    max_queue_delay_ms: float = 5.0
    max_queue_size: int = 64
    request_timeout_s: float = 30.0
    http_host: str = "0.0.0.0"
    http_port: int = 8000
    grpc_port: int = 50051
    log_level: str = "info"
    log_format: LogFormat = "text"
    max_body_bytes: int = 64 * MIB
    grpc_max_message_bytes: int = 64 * MIB
    max_pixels: int = 40_000_000
    overload_status: OverloadStatus = "unavailable"
    drain_grace_s: float = 30.0
    dtype: DTypeName = "float32"
    retain_freed_memory: bool = True  # glibc malloc keeps freed memory (server/allocator.py)

    def __post_init__(self) -> None:
        validate(self, "settings")

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @classmethod
    def load(
        cls,
        config_file: Path | None = None,
        environ: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Merge the sources; ``overrides`` (CLI flags) set to None are ignored.

        ``config_file`` None falls back to ``$MASKSERVE_CONFIG`` when that is set.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if config_file is None and environ.get(CONFIG_ENV):
            config_file = Path(environ[CONFIG_ENV])
        if config_file is not None:
            values.update(_from_file(Path(config_file)))
        values.update(_from_environ(environ))
        for name, value in (overrides or {}).items():
            if value is not None:
                values[name] = _convert(name, value, f"--{name.replace('_', '-')}")
        return cls(**values)


@dataclass(frozen=True)
class ModelSettings:
    """The effective per-model configuration: global defaults with model.toml overrides."""

    max_batch_size: int
    max_queue_delay_ms: float
    max_queue_size: int
    instances: int
    score_threshold: float | None

    @classmethod
    def resolve(
        cls, model_table: Mapping[str, Any], defaults: Settings, source: str
    ) -> ModelSettings:
        """``model_table`` is ``ModelSpec.settings`` (model.toml minus family/weights)."""
        batching = model_table.get("batching", {})
        if not isinstance(batching, Mapping):
            raise SettingsError(f"{source}: [batching] must be a table")
        unknown = set(batching) - {"max_batch_size", "max_queue_delay_ms", "max_queue_size"}
        if unknown:
            raise SettingsError(f"{source}: unknown [batching] keys {sorted(unknown)}")
        conv: dict[str, Any] = {
            k: _convert(k, v, f"{source}: batching.{k}") for k, v in batching.items()
        }
        threshold = model_table.get("score_threshold")
        if threshold is not None:
            threshold = _number(float)(threshold, f"{source}: score_threshold")
            if not 0.0 <= threshold <= 1.0:
                raise SettingsError(f"{source}: score_threshold must be in [0, 1], got {threshold}")
        instances = model_table.get("instances", defaults.workers_per_device)
        return cls(
            max_batch_size=conv.get("max_batch_size", defaults.max_batch_size),
            max_queue_delay_ms=conv.get("max_queue_delay_ms", defaults.max_queue_delay_ms),
            max_queue_size=conv.get("max_queue_size", defaults.max_queue_size),
            instances=_convert("workers_per_device", instances, f"{source}: instances"),
            score_threshold=threshold,
        )


def _number(kind: type) -> Callable[[Any, str], Any]:
    def convert(value: Any, where: str) -> Any:
        if isinstance(value, bool):
            raise SettingsError(f"{where}: expected a number, got {value!r}")
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise SettingsError(f"{where}: expected {kind.__name__}, got {value!r}") from None
        if kind is int and isinstance(value, float) and value != number:
            raise SettingsError(f"{where}: expected an integer, got {value!r}")
        return number

    return convert


def _string_list(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, (list, tuple)):
        items = [str(part).strip() for part in value]
    else:
        raise SettingsError(f"{where}: expected a list or comma-separated string, got {value!r}")
    items = [item for item in items if item]
    if not items:
        raise SettingsError(f"{where}: must name at least one entry")
    return items


def _boolean(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{where}: expected true or false, got {value!r}")


def _models(value: Any, where: str) -> list[str] | None:
    if value is None or (isinstance(value, str) and value.strip() in ("", "*", "all")):
        return None
    return _string_list(value, where)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise SettingsError(f"{where}: expected a string, got {value!r}")
    return value.strip()


def _path(value: Any, where: str) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise SettingsError(f"{where}: expected a path, got {value!r}")
    return Path(value).expanduser()


_CONVERTERS: dict[str, Callable[[Any, str], Any]] = {
    "model_repository": _path,
    "models": _models,
    "devices": _string_list,
    "workers_per_device": _number(int),
    "max_batch_size": _number(int),
    "max_queue_delay_ms": _number(float),
    "max_queue_size": _number(int),
    "request_timeout_s": _number(float),
    "http_host": _text,
    "http_port": _number(int),
    "grpc_port": _number(int),
    "log_level": lambda v, w: _text(v, w).lower(),
    "log_format": lambda v, w: _text(v, w).lower(),
    "max_body_bytes": _number(int),
    "grpc_max_message_bytes": _number(int),
    "max_pixels": _number(int),
    "overload_status": lambda v, w: _text(v, w).lower(),
    "drain_grace_s": _number(float),
    "dtype": lambda v, w: _text(v, w).lower(),
    "retain_freed_memory": _boolean,
}


def _convert(name: str, value: Any, where: str) -> Any:
    if name not in _CONVERTERS:
        raise SettingsError(f"{where}: unknown setting {name!r}; known: {sorted(_CONVERTERS)}")
    converted = _CONVERTERS[name](value, where)
    if name in _CHECKS:
        _apply_check(_CHECKS[name], converted, where)
    return converted


def _from_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise SettingsError(f"config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path}: invalid TOML: {exc}") from None
    batching = data.pop("batching", {})
    if not isinstance(batching, dict):
        raise SettingsError(f"config file {path}: [batching] must be a table")
    data.update(batching)
    return {name: _convert(name, value, f"{path}: {name}") for name, value in data.items()}


def _from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX) or key == CONFIG_ENV:
            continue
        name = key.removeprefix(ENV_PREFIX).lower()
        values[name] = _convert(name, raw, f"{key}={raw!r}")
    return values


Check = tuple[Callable[[Any], bool], str]


def _choices(options: tuple[str, ...]) -> Check:
    return (lambda v: v in options, f"must be one of {list(options)}")


def _device_ok(devices: list[str]) -> bool:
    for name in devices:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            return False
        if device.type not in ("cpu", "cuda"):
            return False
    return True


def _parses_as_devices(devices: list[str]) -> bool:
    try:
        return _device_ok(devices)
    except RuntimeError:
        return False


_CHECKS: dict[str, Check] = {
    "devices": (
        _parses_as_devices,
        "must be torch devices of type cpu or cuda (cuda only where CUDA is available)",
    ),
    "workers_per_device": (lambda v: v >= 1, "must be >= 1"),
    "max_batch_size": (lambda v: v >= 1, "must be >= 1"),
    "max_queue_delay_ms": (lambda v: v >= 0, "must be >= 0"),
    "max_queue_size": (lambda v: v >= 1, "must be >= 1"),
    "request_timeout_s": (lambda v: v > 0, "must be > 0"),
    "http_port": (lambda v: 0 <= v <= 65535, "must be a port number in [0, 65535]"),
    "grpc_port": (lambda v: 0 <= v <= 65535, "must be a port number in [0, 65535]"),
    "log_level": _choices(LOG_LEVELS),
    "log_format": _choices(get_args(LogFormat)),
    "max_body_bytes": (lambda v: v >= 1, "must be >= 1"),
    "grpc_max_message_bytes": (lambda v: v >= 1, "must be >= 1"),
    "max_pixels": (lambda v: v >= 1, "must be >= 1"),
    "overload_status": _choices(get_args(OverloadStatus)),
    "drain_grace_s": (lambda v: v >= 0, "must be >= 0"),
    "dtype": _choices(get_args(DTypeName)),
}


def _apply_check(check: Check, value: Any, where: str) -> None:
    accept, rule = check
    if not accept(value):
        raise SettingsError(f"{where}: {rule}, got {value!r}")


def validate(settings: Settings, source: str) -> None:
    """Convert and check every field (also for a Settings built directly, e.g. in tests)."""
    for name in _CONVERTERS:
        value = getattr(settings, name)
        setattr(settings, name, _convert(name, value, f"{source}: {name}"))
