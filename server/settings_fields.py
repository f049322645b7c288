"""How one setting is declared: a dataclass field whose metadata carries everything else.

``setting(default, convert, help=...)`` is the single declaration of a server setting.
From it come the ``Settings`` attribute, the ``maskserve serve`` flag (``--field-name``),
the ``MASKSERVE_FIELD_NAME`` environment variable and the TOML key ``field_name``; the
same converter and check apply whichever source a value comes from, so a bad value fails at
start-up naming its source.  tests/core/test_settings_declared.py checks that every field is
declared this way and reachable from all three sources.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Converter = Callable[[Any, str], Any]
Check = tuple[Callable[[Any], bool], str]
SPEC_KEY = "maskserve_setting"


class SettingsError(ValueError):
    """A setting is missing, malformed or out of range; the message names its source."""


@dataclass(frozen=True)
class SettingSpec:
    """What the declaration says beyond the default: parse, check, explain."""

    convert: Converter
    help: str
    check: Check | None = None
    aliases: tuple[str, ...] = ()  # extra flag spellings kept for older command lines
    metavar: str | None = None

    def apply(self, value: Any, where: str) -> Any:
        converted = self.convert(value, where)
        if self.check is not None:
            accept, rule = self.check
            if not accept(converted):
                raise SettingsError(f"{where}: {rule}, got {converted!r}")
        return converted


def setting(
    default: Any = dataclasses.MISSING,
    convert: Converter | None = None,
    *,
    help: str,
    check: Check | None = None,
    factory: Callable[[], Any] | None = None,
    aliases: tuple[str, ...] = (),
    metavar: str | None = None,
) -> Any:
    """Declare a setting: the one place its flag, variable, TOML key and rules come from."""
    if convert is None:
        raise TypeError("a setting needs a converter")
    spec = SettingSpec(convert, help, check, aliases, metavar)
    metadata = {SPEC_KEY: spec}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def spec_of(field: dataclasses.Field[Any]) -> SettingSpec:
    spec = field.metadata.get(SPEC_KEY)
    if not isinstance(spec, SettingSpec):
        raise TypeError(f"setting {field.name!r} is not declared with setting(...)")
    return spec


def flag_of(name: str) -> str:
    return "--" + name.replace("_", "-")


def env_of(name: str, prefix: str) -> str:
    return prefix + name.upper()


# ---- converters -------------------------------------------------------------------------


def number(kind: type) -> Converter:
    def convert(value: Any, where: str) -> Any:
        if isinstance(value, bool):
            raise SettingsError(f"{where}: expected a number, got {value!r}")
        try:
            result = kind(value)
        except (TypeError, ValueError):
            raise SettingsError(f"{where}: expected {kind.__name__}, got {value!r}") from None
        if kind is int and isinstance(value, float) and value != result:
            raise SettingsError(f"{where}: expected an integer, got {value!r}")
        return result

    return convert


def string_list(value: Any, where: str) -> list[str]:
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


def boolean(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{where}: expected true or false, got {value!r}")


def optional_names(value: Any, where: str) -> list[str] | None:
    """A list of names, or None (every one) for nothing, ``*`` or ``all``."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "*", "all")):
        return None
    return string_list(value, where)


def text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise SettingsError(f"{where}: expected a string, got {value!r}")
    return value.strip()


def lower_text(value: Any, where: str) -> str:
    return text(value, where).lower()


def path(value: Any, where: str) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise SettingsError(f"{where}: expected a path, got {value!r}")
    return Path(value).expanduser()


def optional_path(value: Any, where: str) -> Path | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return path(value, where)


# ---- checks -----------------------------------------------------------------------------


def choices(options: tuple[str, ...]) -> Check:
    return (lambda v: v in options, f"must be one of {list(options)}")


def at_least(low: float) -> Check:
    return (lambda v: v >= low, f"must be >= {low:g}")


def positive() -> Check:
    return (lambda v: v > 0, "must be > 0")


PORT: Check = (lambda v: 0 <= v <= 65535, "must be a port number in [0, 65535]")
