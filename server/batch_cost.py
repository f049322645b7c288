"""How big a batch should be: a running cost model per batch size (adaptive batching).

On a CPU a batch of 8 can cost more per image than a batch of 1 (a ResNet-50 YOLACT ran
779 vs 494 ms per image here), so a fixed ``max_batch_size`` makes a server slower exactly
when load arrives.  Each model's batcher asks this model for its limit instead:

* after warm-up a worker measures batch sizes 1, 2, 4, … up to ``max_batch_size`` (it
  stops early once a size costs more per image than the one before);
* every executed batch updates an exponentially weighted mean of seconds per batch for
  its size, so a change of machine load does not leave a stale choice;
* the limit is the size with the lowest cost per image among those within the latency
  budget, where a larger size must be at least 5 % cheaper per image to win (noise must
  not flip the choice), and every ``EXPLORE_EVERY`` batches the next size up is allowed
  once, so a size that became cheaper is found again.

``max_batch_size`` stays the upper bound the user set.
"""

from __future__ import annotations

import threading

ALPHA = 0.3  # weight of the newest measurement in the running mean
GAIN = 0.95  # a larger batch must cost at most this share per image of the smaller
EXPLORE_EVERY = 64


def candidate_sizes(max_batch_size: int) -> list[int]:
    """1, 2, 4, … below ``max_batch_size``, and ``max_batch_size`` itself."""
    sizes, size = [], 1
    while size < max_batch_size:
        sizes.append(size)
        size *= 2
    return [*sizes, max_batch_size]


class BatchCostModel:
    """Seconds per batch by size, and the batch size limit they imply."""

    def __init__(self, max_batch_size: int, budget_s: float | None = None) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        self.max_batch_size = max_batch_size
        self.budget_s = budget_s
        self.sizes = candidate_sizes(max_batch_size)
        self._seconds: dict[int, float] = {}
        self._lock = threading.Lock()  # workers observe from their own threads
        self._since_explore = 0
        self.limit = max_batch_size

    def observe(self, size: int, seconds: float) -> None:
        """One executed (or probed) batch of ``size`` images took ``seconds``."""
        if size < 1 or seconds <= 0:
            return
        with self._lock:
            old = self._seconds.get(size)
            self._seconds[size] = seconds if old is None else old + ALPHA * (seconds - old)
            self.limit = self._best()

    def per_image_ms(self) -> dict[int, float]:
        with self._lock:
            return {s: 1e3 * t / s for s, t in sorted(self._seconds.items())}

    def batch_seconds(self, size: int) -> float | None:
        """The running mean of a batch of ``size``, None if never measured."""
        with self._lock:
            return self._seconds.get(size)

    def measured(self, size: int) -> bool:
        return size in self._seconds

    def next_limit(self) -> int:
        """The limit for the next batch: usually :attr:`limit`, now and then one size up."""
        with self._lock:
            self._since_explore += 1
            if self._since_explore < EXPLORE_EVERY or self.limit >= self.max_batch_size:
                return self.limit
            self._since_explore = 0
            return next(s for s in self.sizes if s > self.limit)

    def _best(self) -> int:
        if not self._seconds:
            return self.max_batch_size
        best: int | None = None
        for size in sorted(self._seconds):
            seconds = self._seconds[size]
            if self.budget_s is not None and seconds > self.budget_s and best is not None:
                continue
            if best is None or seconds / size <= GAIN * self._seconds[best] / best:
                best = size
        assert best is not None
        return best
