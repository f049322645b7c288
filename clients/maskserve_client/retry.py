"""When to retry an overloaded server, and how long to wait first."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries of responses that say "try again later" (503, 429 by default).

    A ``Retry-After`` header is honoured: the client never retries sooner than asked, and
    gives up at once if asked to wait longer than ``max_retry_after_s``.  Without the
    header it backs off exponentially from ``backoff_s`` up to ``max_backoff_s``.
    """

    max_retries: int = 3
    statuses: frozenset[int] = frozenset({429, 503})
    backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    max_retry_after_s: float = 30.0

    def delay(self, attempt: int, status: int, retry_after: str | None) -> float | None:
        """Seconds to wait before retry ``attempt + 1`` (0-based), or None to give up."""
        if status not in self.statuses or attempt >= self.max_retries:
            return None
        asked = parse_retry_after(retry_after)
        if asked is None:
            return min(self.backoff_s * 2**attempt, self.max_backoff_s)
        return asked if asked <= self.max_retry_after_s else None


NO_RETRY = RetryPolicy(max_retries=0)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: a number of seconds or an HTTP date; None if absent/bad."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)
