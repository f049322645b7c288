"""Schemathesis against the running server's own OpenAPI document (``/openapi.json``).

Every operation of the document gets generated requests, valid ones and invalid ones,
sent over a socket to the real server; every answer must be documented: its status, its
content type and its body's schema, and never a 5xx. The segment route takes a raw image
body: a hook swaps a real PNG, JPEG or WebP (and the served model's name) into some of the
generated requests, so that the 200 answers are checked too, not only the refusals.
Bounded and derandomized: the same requests on every run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import schemathesis
from api_harness import MODEL, RunningServer, encode
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
MAX_EXAMPLES = 20  # per operation and mode; ~20 operations
IMAGE_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}
SEGMENT = "/v1/models/{model}/segment"
LONG_TIMEOUT_S = 60.0
Seen = defaultdict[str, set[int]]  # "METHOD /path" -> the statuses answered


def real_images(pixels: np.ndarray) -> dict[str, list[bytes]]:
    """Per image content type: the test scene and a tiny crop of it, encoded."""
    crops = (pixels, np.ascontiguousarray(pixels[:7, :9]))
    return {media: [encode(c, fmt) for c in crops] for media, fmt in IMAGE_FORMATS.items()}


def realistic(images: dict[str, list[bytes]]) -> Callable[[Case], st.SearchStrategy[Case]]:
    """Turn a generated case into a strategy over it and realistic variants: the served
    model's name in the path, and, for the segment route, a real image of the case's
    content type as the body."""

    def variants(case: Case) -> st.SearchStrategy[Case]:
        model: st.SearchStrategy[str | None] = st.just(None)
        if "model" in (case.path_parameters or {}):
            model = st.sampled_from([None, MODEL, MODEL])
        body: st.SearchStrategy[bytes | dict[str, bytes] | None] = st.just(None)
        if case.operation.path == SEGMENT and case.media_type in images:
            body = st.sampled_from([None, *images[case.media_type]])
        elif case.operation.path == SEGMENT and case.media_type == "multipart/form-data":
            body = st.sampled_from([None, {"image": images["image/png"][0]}])
        return st.tuples(model, body).map(lambda chosen: apply(case, *chosen))

    def apply(case: Case, model: str | None, body: bytes | dict[str, bytes] | None) -> Case:
        timeout = (case.query or {}).get("timeout")
        if isinstance(timeout, int | float) and 0 < timeout < LONG_TIMEOUT_S:
            # A short deadline makes 503/504 a matter of timing (test_api_overload and the
            # deadline tests cover those); here the status must not depend on the machine.
            case.query = {**case.query, "timeout": LONG_TIMEOUT_S}
        if model is not None:
            case.path_parameters = {**case.path_parameters, "model": model}
        if body is not None:
            case.body = body
        return case

    return variants


def negatable(operation: dict[str, Any]) -> bool:
    """Whether invalid requests exist: a body or a query parameter to get wrong (a path
    string takes any value; hypothesis would search at length for an invalid one)."""
    query = any(p.get("in") != "path" for p in operation.get("parameters", []))
    return query or "requestBody" in operation


@pytest.fixture(scope="module")
def api_schema(server: RunningServer) -> Any:
    return schemathesis.openapi.from_url(f"{server.http_url}/openapi.json")


def failures_of(
    operation: Any, mode: GenerationMode, images: dict[str, list[bytes]], seen: Seen
) -> str:
    """Run ``MAX_EXAMPLES`` generated requests on ``operation``; "" or the first failure."""
    strategy = operation.as_strategy(generation_mode=mode).flatmap(realistic(images))

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the report names the case
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def run(case: Case) -> None:
        response = case.call_and_validate(checks=CHECKS, timeout=60)
        seen[f"{operation.method.upper()} {operation.path}"].add(response.status_code)

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid (no parameters, or any string is valid)
        return ""
    except Exception as exc:  # schemathesis' failure groups and hypothesis' errors alike
        return f"{operation.method.upper()} {operation.path} ({mode.value}): {exc}"
    return ""


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_answer_is_documented(
    api_schema: Any, pixels: np.ndarray, mode: GenerationMode
) -> None:
    images = real_images(pixels)
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20  # /v1, /v2 and the operational routes
    seen: Seen = defaultdict(set)
    if mode is GenerationMode.NEGATIVE:
        operations = [op for op in operations if negatable(op.definition.raw)]
    failures = [failures_of(operation, mode, images, seen) for operation in operations]
    assert not any(failures), "\n\n".join(f for f in failures if f)
    print({name: sorted(statuses) for name, statuses in seen.items()})
    if mode is GenerationMode.POSITIVE:  # the real images were segmented, not only refused
        assert 200 in seen[f"POST {SEGMENT}"], seen
