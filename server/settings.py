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

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import torch

from maskserve import settings_fields as fields
from maskserve.models.registry import ZOO_DIR
from maskserve.settings_fields import (
    Check,
    SettingsError,
    SettingSpec,
    at_least,
    choices,
    flag_of,
    number,
    positive,
    setting,
    spec_of,
)

ENV_PREFIX = "MASKSERVE_"
CONFIG_ENV = "MASKSERVE_CONFIG"
MIB = 1 << 20

LogFormat = Literal["text", "json"]
OverloadStatus = Literal["unavailable", "resource_exhausted"]
DTypeName = Literal["float32", "float16", "bfloat16"]
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def default_devices() -> list[str]:
    return ["cuda:0"] if torch.cuda.is_available() else ["cpu"]


def _device_ok(devices: list[str]) -> bool:
    for name in devices:
        try:
            device = torch.device(name)
        except RuntimeError:
            return False
        if device.type == "cuda" and not torch.cuda.is_available():
            return False
        if device.type not in ("cpu", "cuda"):
            return False
    return True


DEVICES: Check = (
    _device_ok,
    "must be torch devices of type cpu or cuda (cuda only where CUDA is available)",
)


@dataclass
class Settings:
    """Server-wide settings; each field is declared once with ``setting(...)``.

    The declaration gives the ``maskserve serve --field-name`` flag, the
    ``MASKSERVE_FIELD_NAME`` variable and the TOML key ``field_name`` (batching keys may
    also sit in a ``[batching]`` table).  Lists are comma-separated in flags and variables.
    """

    model_repository: Path = setting(ZOO_DIR, fields.path, help="folder of model folders")
    models: list[str] | None = setting(
        None, fields.optional_names, help="comma-separated model names to serve"
    )
    devices: list[str] = setting(
        convert=fields.string_list,
        factory=default_devices,
        check=DEVICES,
        help="comma-separated torch devices, e.g. cpu or cuda:0,cuda:1 (cuda:0 by default "
        "where CUDA is available)",
    )
    workers_per_device: int = setting(
        1, number(int), check=at_least(1), help="model copies (workers) per device"
    )
    max_batch_size: int = setting(
        8, number(int), check=at_least(1), help="requests per batch at most"
    )
    max_queue_delay_ms: float = setting(
        5.0,
        number(float),
        check=at_least(0),
        help="how long a batch waits to fill after its first request",
    )
    max_queue_size: int = setting(
        64, number(int), check=at_least(1), help="queued requests per model before refusing"
    )
    request_timeout_s: float = setting(
        30.0,
        number(float),
        check=positive(),
        aliases=("--request-timeout",),
        help="default per-request deadline in seconds",
    )
    http_host: str = setting(
        "0.0.0.0", fields.text, aliases=("--host",), help="address both servers bind"
    )
    http_port: int = setting(8000, number(int), check=fields.PORT, help="REST port")
    grpc_port: int = setting(50051, number(int), check=fields.PORT, help="gRPC port")
    log_level: str = setting("info", fields.lower_text, check=choices(LOG_LEVELS), help="log level")
    log_format: LogFormat = setting(
        "text", fields.lower_text, check=choices(get_args(LogFormat)), help="log line format"
    )
    max_body_bytes: int = setting(
        64 * MIB, number(int), check=at_least(1), help="largest REST request body (413 above)"
    )
    grpc_max_message_bytes: int = setting(
        64 * MIB, number(int), check=at_least(1), help="largest gRPC message"
    )
    max_pixels: int = setting(
        40_000_000, number(int), check=at_least(1), help="largest decoded image (pixels)"
    )
    worker_watchdog_s: float = setting(
        120.0,
        number(float),
        check=at_least(0),
        help="a batch running longer fails (500) and its worker is replaced with a fresh "
        "model copy (0: no watchdog); keep it above the slowest batch",
    )
    max_pixels_in_flight: int = setting(
        400_000_000,
        number(int),
        check=at_least(1),
        help="decoded pixels of all requests in flight together (about 3 bytes each, "
        "before the model's copies); a request past it gets a fast 503",
    )
    max_connections: int = setting(
        512,
        number(int),
        check=at_least(0),
        help="open connections served at once on each port: over HTTP a request on one more "
        "gets a fast 503 and its connection is closed; over gRPC one more is closed as it "
        "is accepted (0: no limit). Keep it below the descriptor limit",
    )
    http_keep_alive_s: int = setting(
        5, number(int), check=at_least(1), help="seconds an idle HTTP keep-alive connection stays"
    )
    grpc_keepalive_s: float = setting(
        60.0,
        number(float),
        check=positive(),
        help="the gRPC server pings a connection silent this long, and closes it when the "
        "ping is not answered within 20 s (a vanished client)",
    )
    grpc_max_connection_idle_s: float = setting(
        300.0,
        number(float),
        check=at_least(0),
        help="a gRPC connection without calls this long is closed with GOAWAY (clients "
        "reconnect transparently; 0: never)",
    )
    overload_status: OverloadStatus = setting(
        "unavailable",
        fields.lower_text,
        check=choices(get_args(OverloadStatus)),
        help="what a full queue answers: unavailable (503/UNAVAILABLE) or "
        "resource_exhausted (429/RESOURCE_EXHAUSTED)",
    )
    drain_grace_s: float = setting(
        30.0,
        number(float),
        check=at_least(0),
        help="on SIGTERM, how long in-flight work may finish before the server stops",
    )
    dtype: DTypeName = setting(
        "float32",
        fields.lower_text,
        check=choices(get_args(DTypeName)),
        help="model weights' dtype on the devices (bfloat16: CPUs with AVX-512 BF16 / AMX, "
        "where it is faster; docs/benchmarks.md gives speed and accuracy)",
    )
    adaptive_batching: bool = setting(
        True,
        fields.boolean,
        help="measure batch costs and batch only up to the size with the best images/s "
        "(max_batch_size stays the upper bound)",
    )
    max_queue_wait_s: float = setting(
        0.0,
        number(float),
        check=at_least(0),
        help="refuse at once (503) a request whose estimated wait for its answer, from the "
        "measured batch costs, exceeds this (0: only its deadline bounds the wait, and a "
        "request that cannot meet it is refused at once instead of timing out in the queue)",
    )
    max_queue_wait_batches: float = setting(
        0.0,
        number(float),
        check=at_least(0),
        help="refuse at once (503) a request that would wait for more than this many batch "
        "times (its own included, at the batch size the batcher chose, measured on this "
        "machine) before its answer: admitted requests keep a bounded latency under "
        "overload (0: off; 2-4 bound it, see docs/benchmarks.md; max_queue_wait_s bounds "
        "it in seconds)",
    )
    share_cpu_cores: bool = setting(
        True,
        fields.boolean,
        help="CPU workers share the cores by current load (intra-op threads per batch = "
        "cores / busy workers) instead of a fixed split between all loaded models",
    )
    api_keys: list[str] | None = setting(
        None,
        fields.optional_names,
        help="accepted API keys, comma-separated; prefer MASKSERVE_API_KEYS or "
        "api_keys_file (a flag shows in ps). None: no authentication",
    )
    api_keys_file: Path | None = setting(
        None, fields.optional_path, help="file of accepted API keys, one per line"
    )
    auth_open_paths: list[str] = setting(
        convert=fields.string_list,
        factory=lambda: ["/healthz", "/readyz", "/metrics", "/", "/static/"],
        help="HTTP paths that need no API key; one ending in / (other than /) opens every "
        "path under it. The page (/ and /static/) asks for the key itself",
    )
    tls_cert_file: Path | None = setting(
        None, fields.optional_path, help="PEM certificate: serve HTTPS and gRPC over TLS"
    )
    tls_key_file: Path | None = setting(
        None, fields.optional_path, help="PEM private key of tls_cert_file"
    )
    tls_client_ca_file: Path | None = setting(
        None, fields.optional_path, help="PEM CA: require client certificates (mutual TLS)"
    )
    retain_freed_memory: bool = setting(
        True,
        fields.boolean,
        help="glibc malloc keeps freed memory: fewer page faults per forward (server/allocator.py)",
    )

    release_memory_after_bytes: int = setting(
        16 * MIB,
        number(int),
        check=at_least(0),
        help="a request whose body or decoded image (3 bytes a pixel) reaches this size has "
        "the process's free memory given back to the kernel once no such request is in "
        "flight (glibc malloc_trim; server/memory_release.py). 0: never",
    )

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
                values[name] = _convert(name, value, flag_of(name))
        return cls(**values)


def specs() -> dict[str, SettingSpec]:
    """Every setting's declaration, by field name, in declaration order."""
    return {f.name: spec_of(f) for f in dataclasses.fields(Settings)}


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
            threshold = number(float)(threshold, f"{source}: score_threshold")
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


def _convert(name: str, value: Any, where: str) -> Any:
    known = specs()
    if name not in known:
        raise SettingsError(f"{where}: unknown setting {name!r}; known: {sorted(known)}")
    return known[name].apply(value, where)


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


def validate(settings: Settings, source: str) -> None:
    """Convert and check every field (also for a Settings built directly, e.g. in tests)."""
    for name, spec in specs().items():
        value = getattr(settings, name)
        setattr(settings, name, spec.apply(value, f"{source}: {name}"))
