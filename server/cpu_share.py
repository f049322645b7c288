"""CPU cores shared by the work actually running, not split by the models loaded.

Splitting the cores statically between every CPU worker (cores // workers) left a busy
model with half the machine while an idle second model held the rest: the default
`maskserve serve` (both shipped models) served `yolact_shapes` 5x slower than with it
alone.  Instead every CPU worker is built with all the cores, and before each batch it
sets its intra-op threads to ``cores // busy workers`` (counting itself), so one busy
model among idle ones runs as if alone and two busy models split the cores between them.
A batch keeps the count it started with; the next batch follows the new load.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

SetThreads = Callable[[int], None]


class CoreShare:
    """Counts the CPU workers running a batch and gives each its share of ``cores``."""

    def __init__(self, cores: int, set_threads: SetThreads = torch.set_num_threads) -> None:
        self.cores = max(1, cores)
        self._set_threads = set_threads
        self._busy = 0
        self._lock = threading.Lock()

    @property
    def busy(self) -> int:
        return self._busy

    @contextmanager
    def running(self) -> Iterator[int]:
        """Around one batch, on the worker's thread: yields the threads it was given."""
        with self._lock:
            self._busy += 1
            threads = max(1, self.cores // self._busy)
        self._set_threads(threads)
        try:
            yield threads
        finally:
            with self._lock:
                self._busy -= 1
