"""Settings: precedence of the sources, eager validation, per-model overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from maskserve.models.registry import ZOO_DIR
from maskserve.settings import ModelSettings, Settings, SettingsError


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "maskserve.toml"
    path.write_text(text)
    return path


def test_defaults() -> None:
    settings = Settings.load(environ={})
    assert settings.model_repository == ZOO_DIR
    assert settings.models is None
    assert (settings.max_batch_size, settings.max_queue_delay_ms) == (8, 5.0)
    assert settings.max_body_bytes == 64 * 1024 * 1024
    assert settings.overload_status == "unavailable" and settings.log_format == "text"


def test_flags_beat_environment_beat_file_beat_defaults(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        'max_batch_size = 2\nmax_queue_size = 10\nhttp_port = 9000\nmodels = ["a", "b"]\n'
        "[batching]\nmax_queue_delay_ms = 7.5\n",
    )
    environ = {
        "MASKSERVE_MAX_BATCH_SIZE": "3",
        "MASKSERVE_HTTP_PORT": "9001",
        "MASKSERVE_DEVICES": "cpu, cpu",
        "OTHER": "ignored",
    }
    settings = Settings.load(config, environ, {"max_batch_size": 4, "http_port": None})
    assert settings.max_batch_size == 4  # flag
    assert settings.http_port == 9001  # environment (the flag was not given)
    assert settings.max_queue_size == 10 and settings.max_queue_delay_ms == 7.5  # file
    assert settings.models == ["a", "b"] and settings.devices == ["cpu", "cpu"]
    assert settings.grpc_port == 50051  # default


def test_config_file_may_come_from_the_environment(tmp_path: Path) -> None:
    config = write_config(tmp_path, 'log_format = "json"\n')
    settings = Settings.load(environ={"MASKSERVE_CONFIG": str(config)})
    assert settings.log_format == "json"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"MASKSERVE_MAX_BATCH_SIZE": "0"}, "MASKSERVE_MAX_BATCH_SIZE='0': must be >= 1"),
        ({"MASKSERVE_MAX_BATCH_SIZE": "many"}, "expected int, got 'many'"),
        ({"MASKSERVE_LOG_FORMAT": "xml"}, "must be one of ['text', 'json']"),
        ({"MASKSERVE_NO_SUCH": "1"}, "unknown setting 'no_such'"),
        ({"MASKSERVE_DEVICES": "tpu:0"}, "must be torch devices"),
        ({"MASKSERVE_HTTP_PORT": "70000"}, "must be a port number"),
    ],
)
def test_bad_environment_values_are_refused_with_their_source(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as error:
        Settings.load(environ=environ)
    assert message in str(error.value)


def test_bad_file_and_flag_values_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="invalid TOML"):
        Settings.load(write_config(tmp_path, "max_batch_size = "), environ={})
    with pytest.raises(SettingsError, match=r"maskserve\.toml: max_queue_size: must be >= 1"):
        Settings.load(write_config(tmp_path, "max_queue_size = 0"), environ={})
    with pytest.raises(SettingsError, match="--request-timeout-s: must be > 0"):
        Settings.load(environ={}, overrides={"request_timeout_s": 0})
    with pytest.raises(SettingsError, match="max_batch_size: must be >= 1"):
        Settings(max_batch_size=0)


def test_model_overrides_replace_only_what_they_name() -> None:
    defaults = Settings(max_batch_size=8, max_queue_size=64, workers_per_device=1)
    table = {"batching": {"max_batch_size": 16}, "instances": 2, "score_threshold": 0.3}
    resolved = ModelSettings.resolve(table, defaults, "m/model.toml")
    assert resolved == ModelSettings(16, 5.0, 64, 2, 0.3)
    assert ModelSettings.resolve({}, defaults, "m").score_threshold is None
    with pytest.raises(SettingsError, match=r"unknown \[batching\] keys \[.size.\]"):
        ModelSettings.resolve({"batching": {"size": 1}}, defaults, "m")
    with pytest.raises(SettingsError, match="m: instances: must be >= 1"):
        ModelSettings.resolve({"instances": 0}, defaults, "m")


@pytest.mark.parametrize(("raw", "expected"), [("false", False), ("0", False), ("On", True)])
def test_boolean_settings_parse_words_and_digits(raw: str, expected: bool) -> None:
    environ = {"MASKSERVE_RETAIN_FREED_MEMORY": raw}
    assert Settings.load(environ=environ).retain_freed_memory is expected


def test_boolean_settings_refuse_other_words() -> None:
    with pytest.raises(SettingsError, match="expected true or false, got 'maybe'"):
        Settings.load(environ={"MASKSERVE_RETAIN_FREED_MEMORY": "maybe"})
