"""How fast a model's queue drains, measured: what an overloaded answer's Retry-After says.

A constant Retry-After is wrong both ways: too long for a queue that drains in 200 ms, far
too short for 64 requests behind a 1 s forward pass (the client comes back into the same
full queue). The batcher records every batch it hands to a worker; the rate is the requests
taken over the last :data:`WINDOW_S` seconds, measured up to *now* (a stalled worker makes
the rate fall, not freeze), and a refused client is told to come back once the requests
queued ahead of it would have been taken at that rate.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

WINDOW_S = 10.0
HISTORY = 256  # batches remembered (a bound on memory; the window usually holds fewer)


class DrainRate:
    """Requests taken per second from one queue, over a sliding window."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, window_s: float = WINDOW_S
    ) -> None:
        self._clock = clock
        self._window_s = window_s
        self._taken: collections.deque[tuple[float, int]] = collections.deque(maxlen=HISTORY)

    def record(self, count: int) -> None:
        """``count`` requests just left the queue (a batch went to a worker)."""
        self._taken.append((self._clock(), count))

    def per_second(self) -> float | None:
        """Requests per second over the window; None until two batches were seen in it.

        The first batch of the window opens it, so its requests are not counted."""
        now = self._clock()
        while self._taken and self._taken[0][0] < now - self._window_s:
            self._taken.popleft()
        if len(self._taken) < 2:
            return None
        span = now - self._taken[0][0]
        if span <= 0:
            return None
        return sum(count for _, count in list(self._taken)[1:]) / span

    def seconds_to_drain(self, queued: int) -> float | None:
        """How long until ``queued`` requests have left the queue at the measured rate."""
        rate = self.per_second()
        if rate is None or rate <= 0:
            return None
        return queued / rate
