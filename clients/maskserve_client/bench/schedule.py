"""Arrival times of an open-loop load: a Poisson process, drawn from a seeded generator.

In a Poisson process of rate ``r`` the gaps between arrivals are independent and
exponentially distributed with mean ``1 / r``; requests are sent at those times whether or
not earlier ones have been answered, as independent users would send them.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

#: Gaps drawn per call to the generator; the sequence is the same whatever the chunk.
CHUNK = 256


def poisson_arrivals(rate: float, rng: np.random.Generator) -> Iterator[float]:
    """Endless arrival times in seconds from the start (the first one after a gap too)."""
    if not rate > 0:
        raise ValueError(f"the rate must be > 0, got {rate}")
    scale = 1.0 / rate
    now = 0.0
    while True:
        for gap in rng.exponential(scale, CHUNK):
            now += float(gap)
            yield now


def arrival_times(
    rate: float, seed: int, *, count: int | None = None, until: float | None = None
) -> list[float]:
    """The first ``count`` arrival times, or those before ``until`` seconds (one is needed)."""
    if (count is None) == (until is None):
        raise ValueError("give exactly one of count and until")
    times = []
    for at in poisson_arrivals(rate, np.random.default_rng(seed)):
        if (count is not None and len(times) >= count) or (until is not None and at >= until):
            break
        times.append(at)
    return times
