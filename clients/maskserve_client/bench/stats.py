"""Percentiles and the summary of one load level."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from maskserve_client.bench.load import Window

PERCENTILES = (50.0, 90.0, 99.0)
SERVER_STAGES = ("queue", "inference", "postprocess", "total")


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0..100), interpolating linearly between the two nearest
    ranks (numpy's default method); NaN when there are no values."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"the percentile must be in [0, 100], got {q}")
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * q / 100.0
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    fraction = position - below
    return ordered[below] + (ordered[above] - ordered[below]) * fraction


def mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


@dataclass(frozen=True)
class LevelStats:
    """One level's figures. Latencies and server timings are over the successful answers."""

    protocol: str
    #: ``"closed"`` (``concurrency`` requests in flight) or ``"open"`` (``rate`` per second).
    mode: str
    concurrency: int | None
    rate: float | None
    requests: int
    ok: int
    seconds: float
    #: Successful answers per second over the measured window (images/s).
    throughput: float
    latency_ms: dict[str, float]
    statuses: dict[str, int]
    #: Mean seconds per stage as the server reported them, in milliseconds.
    server_ms: dict[str, float] = field(default_factory=dict)
    first_error: str | None = None

    @property
    def level(self) -> str:
        return f"conc {self.concurrency}" if self.mode == "closed" else f"rate {self.rate:g}/s"

    def to_json(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "mode": self.mode,
            "concurrency": self.concurrency,
            "rate": self.rate,
            "requests": self.requests,
            "ok": self.ok,
            "seconds": self.seconds,
            "throughput": self.throughput,
            "latency_ms": self.latency_ms,
            "statuses": self.statuses,
            "server_ms": self.server_ms,
            "first_error": self.first_error,
        }


def summarize(
    window: Window, protocol: str, *, concurrency: int | None = None, rate: float | None = None
) -> LevelStats:
    records = window.records
    good = [r for r in records if r.outcome.ok]
    latencies = [1e3 * (r.finished - r.started) for r in good]
    latency_ms = {f"p{q:g}": percentile(latencies, q) for q in PERCENTILES}
    latency_ms["mean"] = mean(latencies)
    latency_ms["max"] = max(latencies, default=math.nan)
    server_ms = {}
    for stage in SERVER_STAGES:
        values = [r.outcome.timings[stage] for r in good if stage in r.outcome.timings]
        server_ms[stage] = 1e3 * mean(values)
    statuses = Counter(r.outcome.status for r in records)
    errors = (r.outcome.error for r in records if not r.outcome.ok)
    return LevelStats(
        protocol=protocol,
        mode="closed" if rate is None else "open",
        concurrency=concurrency,
        rate=rate,
        requests=len(records),
        ok=len(good),
        seconds=window.seconds,
        throughput=len(good) / window.seconds if window.seconds > 0 else 0.0,
        latency_ms=latency_ms,
        statuses=dict(sorted(statuses.items())),
        server_ms=server_ms,
        first_error=next(errors, None),
    )
