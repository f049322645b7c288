"""What the segment route answers: its JSON, or the overlay picture (PNG, JPEG, WebP).

``?format=json|png|jpeg|webp`` wins when given (another value: 400 ``invalid_option``, from
the query's validation). Otherwise the ``Accept`` header decides, as RFC 9110 §12.5.1 says:
the acceptable type with the highest ``q`` (0 = not acceptable), more specific ranges
overriding wider ones (``image/png`` over ``image/*`` over ``*/*``), and on a tie the
server's order, JSON first. No header, an empty or unparseable one, or ``*/*`` give JSON.
A header that accepts none of the four gets 406 ``not_acceptable``. Error answers are
JSON whatever the client accepts.
"""

from __future__ import annotations

from typing import Any

from maskserve.api import schemas
from maskserve.errors import NotAcceptableError

JSON = "application/json"
#: The types the route produces, in the server's order of preference on a tie.
ANSWER_TYPES = (JSON, "image/png", "image/jpeg", "image/webp")
FORMATS: dict[str, str] = {
    "json": JSON,
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
}

_BINARY = {"schema": {"type": "string", "format": "binary"}}
#: FastAPI ``responses=`` entries of the segment route beyond its JSON 200 and errors.
OPENAPI_RESPONSES: dict[int | str, Any] = {
    200: {
        "description": "The detections as JSON, or (Accept: image/..., or ?format=) the "
        "overlay picture: masks in colour, boxes and labels over the image",
        "content": {media: _BINARY for media in ANSWER_TYPES[1:]},
    },
    406: {
        "model": schemas.ErrorBody,
        "description": "The Accept header names none of application/json, image/png, "
        "image/jpeg, image/webp",
    },
}


def answer_type(accept: str | None, answer_format: str | None) -> str:
    """The media type to answer with; raises NotAcceptableError (406)."""
    if answer_format is not None:
        return FORMATS[answer_format]
    if accept is None or not accept.strip():
        return JSON
    ranges = _parse(accept)
    if not ranges:  # nothing parseable: as if the header were absent
        return JSON
    best, best_q = JSON, 0.0
    for media in ANSWER_TYPES:
        q = _quality(media, ranges)
        if q > best_q:
            best, best_q = media, q
    if best_q <= 0.0:
        raise NotAcceptableError(
            f"cannot answer any type of Accept: {accept[:200]!r}; this route answers "
            f"{', '.join(ANSWER_TYPES)} (or choose with ?format=json|png|jpeg|webp)"
        )
    return best


def _parse(accept: str) -> list[tuple[str, str, float]]:
    """``Accept`` → [(type, subtype, q)]; malformed ranges and q values are skipped."""
    ranges = []
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        kind, _, sub = media.lower().partition("/")
        if not kind or not sub:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(1.0, max(0.0, float(value)))
                except ValueError:
                    q = -1.0
        if q >= 0.0:
            ranges.append((kind, sub, q))
    return ranges


def _quality(media: str, ranges: list[tuple[str, str, float]]) -> float:
    """The q of the most specific range matching ``media`` (0 when none matches)."""
    kind, _, sub = media.partition("/")
    best_rank, q = -1, 0.0
    for range_kind, range_sub, range_q in ranges:
        if (range_kind, range_sub) == (kind, sub):
            rank = 2
        elif (range_kind, range_sub) == (kind, "*"):
            rank = 1
        elif (range_kind, range_sub) == ("*", "*"):
            rank = 0
        else:
            continue
        if rank > best_rank:
            best_rank, q = rank, range_q
    return q
