"""``maskserve serve``: run the REST + gRPC server (flags > MASKSERVE_* env > --config TOML)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from .allocator import retain_freed_memory
from .logging_setup import configure_logging
from .settings import Settings

# flag → Settings field, for the flags whose names differ from the field's
_FIELDS = {"host": "http_host", "request_timeout": "request_timeout_s"}
_FLAGS: tuple[tuple[str, type, str], ...] = (
    ("--model-repository", Path, "folder of model folders (default: the shipped zoo)"),
    ("--models", str, "comma-separated model names to serve (default: every folder)"),
    ("--devices", str, "comma-separated torch devices, e.g. cpu or cuda:0,cuda:1"),
    ("--workers-per-device", int, "model copies per device"),
    ("--max-batch-size", int, "requests per batch at most"),
    ("--max-queue-delay-ms", float, "how long a batch waits to fill after its first request"),
    ("--max-queue-size", int, "queued requests per model before refusing (503/429)"),
    ("--request-timeout", float, "default per-request deadline in seconds"),
    ("--http-port", int, "REST port (default 8000)"),
    ("--grpc-port", int, "gRPC port (default 50051)"),
    ("--host", str, "address both servers bind (default 0.0.0.0)"),
    ("--log-level", str, "debug, info, warning, error"),
    ("--log-format", str, "text or json"),
    ("--dtype", str, "float32 or float16"),
    ("--retain-freed-memory", str, "true or false: glibc malloc keeps freed memory (faster)"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML settings file")
    for flag, kind, text in _FLAGS:
        # default=SUPPRESS: an unset flag does not override the other sources; the dest
        # prefix keeps --log-level apart from the ``maskserve`` command's own
        name = flag.removeprefix("--").replace("-", "_")
        parser.add_argument(
            flag,
            type=kind,
            help=text,
            dest=f"serve_{name}",
            metavar=name.upper(),
            default=argparse.SUPPRESS,
        )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the parsed flags over MASKSERVE_* env over ``--config`` over defaults."""
    overrides: dict[str, Any] = {}
    for flag, _, _ in _FLAGS:
        name = flag.removeprefix("--").replace("-", "_")
        if f"serve_{name}" in vars(args):
            overrides[_FIELDS.get(name, name)] = getattr(args, f"serve_{name}")
    return Settings.load(args.config, overrides=overrides)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    configure_logging(settings.log_level, settings.log_format)
    if settings.retain_freed_memory:
        retain_freed_memory()  # see server/allocator.py: fewer page faults per forward
    from .app import serve  # the server stack loads only for this subcommand

    try:
        return asyncio.run(serve(settings))
    except OSError as exc:  # a port in use, an address that is not ours
        print(f"maskserve: error: cannot listen: {exc}", file=sys.stderr)
        return 2
