"""YolactConfig ↔ plain dicts (the ``[yolact]`` table of a model folder's ``model.toml``)."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from maskserve.models.yolact.config import BackboneConfig, YolactConfig

_TUPLE_OF_TUPLES = {"anchor_scales"}


def config_to_dict(config: YolactConfig) -> dict[str, Any]:
    """A TOML-friendly dict (lists instead of tuples, no ``extra``)."""
    data = asdict(config)
    data.pop("extra", None)
    return _listify(data)


def config_from_dict(data: dict[str, Any]) -> YolactConfig:
    """The inverse of :func:`config_to_dict`; unknown keys are an error."""
    known = {f.name for f in fields(YolactConfig)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown YOLACT config keys: {sorted(unknown)}")
    values = dict(data)
    values["backbone"] = BackboneConfig(**_tuplify(values["backbone"]))
    for key, value in list(values.items()):
        if key in _TUPLE_OF_TUPLES:
            values[key] = tuple(tuple(v) for v in value)
        elif isinstance(value, list):
            values[key] = tuple(value)
    return YolactConfig(**values)


def _listify(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _listify(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_listify(v) for v in value]
    return value


def _tuplify(data: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
