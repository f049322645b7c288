"""``maskserve serve``: run the REST + gRPC server (flags > MASKSERVE_* env > --config TOML)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from maskserve.allocator import retain_freed_memory
from maskserve.logging_setup import configure_logging
from maskserve.settings import ENV_PREFIX, Settings, specs
from maskserve.settings_fields import env_of, flag_of

DESCRIPTION = """Serve every model of the repository over REST (HTTP) and gRPC.

Every setting below is also a MASKSERVE_<NAME> environment variable and a key of the
--config TOML file (e.g. --max-batch-size, MASKSERVE_MAX_BATCH_SIZE, max_batch_size).
Precedence: flags > environment > config file > defaults."""

LINGER_S = 2.0
"""After the server stopped: how long its threads may take to end before the process
exits without them."""


def _default_text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return "all" if value is None else str(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--config", type=Path, help="TOML settings file (or MASKSERVE_CONFIG)")
    defaults = Settings.load(environ={})
    for name, spec in specs().items():
        # Values stay strings here: the declaration's converter parses them in
        # Settings.load, so a flag's error reads like an environment variable's.
        # default=SUPPRESS: an unset flag does not override the other sources; the dest
        # prefix keeps --log-level apart from the ``maskserve`` command's own.
        parser.add_argument(
            flag_of(name),
            *spec.aliases,
            dest=f"serve_{name}",
            metavar=spec.metavar or name.upper(),
            default=argparse.SUPPRESS,
            help=f"{spec.help} [default: {_default_text(getattr(defaults, name))}; "
            f"env {env_of(name, ENV_PREFIX)}]",
        )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the parsed flags over MASKSERVE_* env over ``--config`` over defaults."""
    given = vars(args)
    overrides = {name: given[f"serve_{name}"] for name in specs() if f"serve_{name}" in given}
    return Settings.load(args.config, overrides=overrides)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    configure_logging(settings.log_level, settings.log_format)
    if settings.retain_freed_memory:
        retain_freed_memory()  # see server/allocator.py: fewer page faults per forward
    from maskserve.app import serve  # the server stack loads only for this subcommand

    try:
        code = asyncio.run(serve(settings))
    except OSError as exc:  # a port in use, an address that is not ours
        print(f"maskserve: error: cannot listen: {exc}", file=sys.stderr)
        return 2
    _exit_if_threads_linger(code)
    return code


def _exit_if_threads_linger(code: int) -> None:
    """Exit now when a thread outlived the server: a model still loading when a signal
    stopped the start-up, or a forward pass whose requests were already answered. Python
    would otherwise wait for it at exit (executor threads are joined), possibly forever."""
    end = time.monotonic() + LINGER_S
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join(max(0.0, end - time.monotonic()))  # idle pool threads end at once
    lingering = [
        t.name for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon
    ]
    if not lingering:
        return
    logging.getLogger(__name__).info(
        "exiting %d without waiting for threads still running: %s", code, ", ".join(lingering)
    )
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
