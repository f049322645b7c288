"""The OpenAPI document says what the server really answers, errors included.

FastAPI documents a 422 on every route with parameters; the server never sends one (the
validation handler in :mod:`maskserve.api.rest` answers 400), so it is removed here. The
statuses each route can send are added with their error shapes: ``{"error": {"code",
"message"}}`` under ``/v1``, the Open Inference Protocol's ``{"error": "..."}`` under
``/v2``. The routes stay where they are; this module only post-processes the document
(once, when ``/openapi.json`` is first asked for). ``tests/api/test_api_schemathesis.py``
holds the server to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from maskserve.api import schemas

MEANINGS: dict[int, str] = {
    400: "Invalid image, option or request (FastAPI's validation errors are mapped to 400)",
    404: "Unknown model",
    413: "Body over max_body_bytes, or decoded image over max_pixels",
    415: "Content type is not an image type this route takes",
    429: "Overloaded (queue full) when overload_status = resource_exhausted",
    500: "Inference failed, or an unexpected error",
    503: "Model not ready, or draining, or overloaded under overload_status = unavailable",
    504: "The deadline (timeout, request_timeout_s) passed before the result",
}
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
_REF = "#/components/schemas/{model}"
_TENSOR = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "example": "IMAGE"},
        "datatype": {"type": "string", "example": "BYTES"},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "parameters": {"type": "object"},
    },
}
INFER_BODY = {
    "required": True,
    "description": "The JSON inference request, optionally followed by binary tensors "
    "(Inference-Header-Content-Length gives the JSON part's size; 0: the body is the raw "
    "image). The image goes in input IMAGE (BYTES) as a binary tensor.",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "parameters": {"type": "object"},
                    "inputs": {"type": "array", "items": _TENSOR},
                    "outputs": {"type": "array", "items": _TENSOR},
                },
                "required": ["inputs"],
            }
        },
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}
_JSON = "application/json"


def error_responses(model: type[BaseModel], statuses: Iterable[int]) -> dict[int | str, Any]:
    """FastAPI ``responses=`` entries: ``model`` as the body of each status in ``statuses``."""
    return {
        status: {
            "model": model,
            "description": MEANINGS[status],
            **({"headers": RETRY_AFTER} if status in (429, 503) else {}),
        }
        for status in statuses
    }


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` return FastAPI's document corrected by :func:`correct`."""
    build = app.openapi
    corrected: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        if not corrected:
            corrected.append(correct(build()))
        return corrected[0]

    app.openapi = openapi  # type: ignore[method-assign]


def correct(doc: dict[str, Any]) -> dict[str, Any]:
    """Remove the 422s, add the statuses each route really sends (in place; returned)."""
    schemas_ = doc.setdefault("components", {}).setdefault("schemas", {})
    for model in (schemas.ErrorBody, schemas.OipErrorBody, schemas.OipReady, schemas.OipModelReady):
        _add_schema(schemas_, model)
    for path, operations in doc.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            extra = _v2_responses(path, method) if path.startswith("/v2") else _v1_responses(path)
            if path.endswith("/infer"):
                operation["requestBody"] = INFER_BODY
            for status, response in extra.items():
                responses[str(status)] = response
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas_.pop(unused, None)
    return doc


def _add_schema(schemas_: dict[str, Any], model: type[BaseModel]) -> None:
    schema = model.model_json_schema(ref_template=_REF)
    schemas_.update(schema.pop("$defs", {}))
    schemas_.setdefault(model.__name__, schema)


def _body(model: type[BaseModel] | None, status: int, description: str = "") -> dict[str, Any]:
    response: dict[str, Any] = {"description": description or MEANINGS[status]}
    if model is not None:
        ref = {"$ref": _REF.format(model=model.__name__)}
        response["content"] = {_JSON: {"schema": ref}}
    if status in (429, 503):
        response["headers"] = RETRY_AFTER
    return response


def _v1_responses(path: str) -> dict[int, Any]:
    """``/v1`` and the operational routes; the segment route declares its own."""
    if path == "/v1/models/{model}":
        return {404: _body(schemas.ErrorBody, 404), 500: _body(schemas.ErrorBody, 500)}
    if path == "/v1/models":
        return {500: _body(schemas.ErrorBody, 500)}
    if path == "/readyz":
        return {503: {"description": "Starting or draining", "content": _status_json()}}
    if path == "/metrics":
        text = {"text/plain": {"schema": {"type": "string"}}}
        return {200: {"description": "Prometheus text exposition format", "content": text}}
    return {}


def _status_json() -> dict[str, Any]:
    return {_JSON: {"schema": {"$ref": _REF.format(model="Status")}}}


def _v2_responses(path: str, method: str) -> dict[int, Any]:
    """The Open Inference Protocol routes (:mod:`maskserve.api.oip_http`)."""
    error = schemas.OipErrorBody
    # An unexpected exception reaches the app-wide handler, which answers the /v1 shape.
    internal = {
        "description": MEANINGS[500],
        "content": {_JSON: {"schema": {"anyOf": [_ref(error), _ref(schemas.ErrorBody)]}}},
    }
    if path == "/v2/health/ready":
        return {200: _body(schemas.OipReady, 200, "Ready"), 503: _body(schemas.OipReady, 503)}
    if path.endswith("/ready"):
        ready = schemas.OipModelReady
        return {200: _body(ready, 200, "Ready"), 404: _body(ready, 404), 503: _body(ready, 503)}
    if path.endswith("/infer"):
        statuses = (400, 404, 413, 415, 429, 503, 504)
        return {200: _infer_ok(), **{s: _body(error, s) for s in statuses}, 500: internal}
    if path == "/v2/repository/index":
        return {400: _body(error, 400, "The body is not valid JSON"), 500: internal}
    if path.startswith("/v2/models/{model}"):
        return {404: _body(error, 404), 503: _body(error, 503), 500: internal}
    return {500: internal}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _infer_ok() -> dict[str, Any]:
    binary = "JSON header then binary tensors (binary_data outputs), see the header length"
    return {
        "description": "The inference response",
        "headers": {
            "Inference-Header-Content-Length": {
                "description": binary,
                "schema": {"type": "integer"},
            }
        },
        "content": {
            _JSON: {"schema": {"type": "object"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
