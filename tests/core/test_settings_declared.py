"""One declaration per setting: every field has its flag, variable and TOML key, all alike."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from maskserve import serve
from maskserve.settings import ENV_PREFIX, Settings, SettingsError, specs
from maskserve.settings_fields import env_of, flag_of, spec_of

# a valid non-default value per setting, written as a user would type it
SAMPLES: dict[str, tuple[str, Any]] = {
    "model_repository": ("/tmp/models", Path("/tmp/models")),
    "models": ("a,b", ["a", "b"]),
    "devices": ("cpu,cpu", ["cpu", "cpu"]),
    "workers_per_device": ("3", 3),
    "max_batch_size": ("5", 5),
    "max_queue_delay_ms": ("2.5", 2.5),
    "max_queue_size": ("17", 17),
    "request_timeout_s": ("4.5", 4.5),
    "http_host": ("127.0.0.1", "127.0.0.1"),
    "http_port": ("8123", 8123),
    "grpc_port": ("50123", 50123),
    "log_level": ("debug", "debug"),
    "log_format": ("json", "json"),
    "max_body_bytes": ("1000", 1000),
    "grpc_max_message_bytes": ("2000", 2000),
    "max_pixels": ("3000", 3000),
    "max_pixels_in_flight": ("5000000", 5000000),
    "worker_watchdog_s": ("7.5", 7.5),
    "max_connections": ("7", 7),
    "http_keep_alive_s": ("9", 9),
    "grpc_keepalive_s": ("12.5", 12.5),
    "grpc_max_connection_idle_s": ("0", 0.0),
    "overload_status": ("resource_exhausted", "resource_exhausted"),
    "drain_grace_s": ("1.5", 1.5),
    "dtype": ("float16", "float16"),
    "retain_freed_memory": ("false", False),
    "release_memory_after_bytes": ("0", 0),
    "adaptive_batching": ("false", False),
    "share_cpu_cores": ("no", False),
    "max_queue_wait_s": ("2.5", 2.5),
    "max_queue_wait_batches": ("3", 3.0),
    "api_keys": ("k1,k2", ["k1", "k2"]),
    "api_keys_file": ("/tmp/keys", Path("/tmp/keys")),
    "auth_open_paths": ("/healthz", ["/healthz"]),
    "tls_cert_file": ("/tmp/c.pem", Path("/tmp/c.pem")),
    "tls_key_file": ("/tmp/k.pem", Path("/tmp/k.pem")),
    "tls_client_ca_file": ("/tmp/ca.pem", Path("/tmp/ca.pem")),
}


def serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    return parser


def test_every_field_is_declared_with_setting() -> None:
    for field in dataclasses.fields(Settings):
        assert spec_of(field).help, field.name


def test_every_setting_has_a_sample_here() -> None:
    """A new setting must be added to SAMPLES, so that the tests below cover it."""
    assert set(SAMPLES) == set(specs())


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_flag_environment_and_toml_give_the_same_value(name: str, tmp_path: Path) -> None:
    typed, expected = SAMPLES[name]
    args = serve_parser().parse_args([flag_of(name), typed])
    from_flag = serve.settings_from_args(args)
    from_env = Settings.load(environ={env_of(name, ENV_PREFIX): typed})
    config = tmp_path / "c.toml"
    config.write_text(f"{name} = {typed!r}\n".replace("'", '"'))
    from_file = Settings.load(config, environ={})
    assert getattr(from_flag, name) == getattr(from_env, name) == expected
    assert getattr(from_file, name) == expected
    assert expected != getattr(Settings.load(environ={}), name), "sample equals the default"


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_help_names_the_flag_default_and_variable(name: str) -> None:
    text = serve_parser().format_help()
    assert flag_of(name) in text
    assert env_of(name, ENV_PREFIX) in " ".join(text.split())


def test_old_flag_spellings_still_work() -> None:
    args = serve_parser().parse_args(["--host", "127.0.0.2", "--request-timeout", "3"])
    settings = serve.settings_from_args(args)
    assert (settings.http_host, settings.request_timeout_s) == ("127.0.0.2", 3.0)


def test_a_bad_flag_value_names_the_flag() -> None:
    args = serve_parser().parse_args(["--max-pixels", "lots"])
    with pytest.raises(SettingsError, match="--max-pixels: expected int, got 'lots'"):
        serve.settings_from_args(args)
