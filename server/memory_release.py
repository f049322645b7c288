"""Give free memory back to the kernel after a large request.

``server/allocator.py`` makes glibc keep the memory a forward pass frees (no trimming, no
``mmap`` below 1 GiB), so that the next batch does not page-fault its activations in
again. The cost was that a request needing far more than a forward pass (a 63 MiB body,
a 6000×6000 JPEG decoded to 108 MB) left the process at that peak for good: measured
before this module, 8 concurrent 63 MiB junk bodies left RSS +535 MB and 10 concurrent
6000² JPEGs +2.15 GB at their peak, never given back.

So large requests are tracked: a request whose body or decoded image reaches
``release_memory_after_bytes`` holds a :class:`MemoryRelease` for as long as it is in
flight. While any is, glibc's trim threshold is back at its default, so every ``free``
shrinks the top of its heap (the top of a worker or I/O thread's arena can only be
returned that way: ``malloc_trim`` leaves it alone); when the last one finishes,
``malloc_trim(0)`` runs on a thread of its own and returns every free page of every arena
to the kernel, those in the middle of a heap included (it ``madvise``-s them), and the
threshold goes back to "never". Ordinary requests never trigger either, so a steady load
keeps its warm memory; after a trim the next forward pass faults its activations in once.
Elsewhere than glibc nothing is tracked.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from maskserve.allocator import (
    GLIBC_TRIM_THRESHOLD,
    M_TRIM_THRESHOLD,
    NEVER_TRIM,
    is_glibc,
    libc,
    mallopt,
    retaining,
)

log = logging.getLogger(__name__)


class Allocator(Protocol):
    def loosen(self) -> None:
        """From now on, ``free`` gives the top of a heap back to the kernel."""

    def tighten(self) -> None:
        """Undo :meth:`loosen`."""

    def trim(self) -> None:
        """Give every free page back to the kernel (slow: run it off the event loop)."""


class GlibcAllocator:
    def __init__(self) -> None:
        self._trim = libc().malloc_trim
        self._trim.argtypes = [ctypes.c_size_t]

    def loosen(self) -> None:
        if retaining():  # else glibc's own dynamic threshold is in force: leave it
            mallopt(M_TRIM_THRESHOLD, GLIBC_TRIM_THRESHOLD)

    def tighten(self) -> None:
        if retaining():
            mallopt(M_TRIM_THRESHOLD, NEVER_TRIM)

    def trim(self) -> None:
        self._trim(0)


def resident_bytes() -> int:
    """This process's resident memory (0 where ``/proc`` is absent)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class MemoryRelease:
    """Counts large requests in flight; trims once when the last of them finishes.

    Used from the event loop only (no locking). ``on_trim`` receives the bytes of
    resident memory the trim gave back, on the event loop.
    """

    def __init__(
        self,
        threshold_bytes: int,
        allocator: Allocator | None,
        on_trim: Callable[[int], None] | None = None,
    ) -> None:
        self.threshold = threshold_bytes
        self._allocator = allocator
        self._on_trim = on_trim
        self._large = 0
        self._loose = False
        self._scheduled = False
        self._running = False
        self._again = False
        self._executor: ThreadPoolExecutor | None = None

    @classmethod
    def for_this_process(
        cls, threshold_bytes: int, on_trim: Callable[[int], None] | None = None
    ) -> MemoryRelease:
        allocator = GlibcAllocator() if threshold_bytes > 0 and is_glibc() else None
        return cls(threshold_bytes, allocator, on_trim)

    @property
    def enabled(self) -> bool:
        return self._allocator is not None

    def is_large(self, nbytes: int) -> bool:
        return self.enabled and nbytes >= self.threshold

    @contextlib.contextmanager
    def hold(self, nbytes: int) -> Iterator[None]:
        """Track the enclosed work as a large request if ``nbytes`` reaches the threshold."""
        if not self.is_large(nbytes):
            yield
            return
        self.begin()
        try:
            yield
        finally:
            self.end()

    def begin(self) -> None:
        assert self._allocator is not None
        self._large += 1
        if not self._loose:
            self._loose = True
            self._allocator.loosen()

    def end(self) -> None:
        self._large -= 1
        if self._large == 0 and not self._scheduled:
            self._scheduled = True  # one start for all that end before it runs
            # after the current step of the event loop, when the finished request's
            # frames (and the buffers they hold) are gone; workers drop their batch as
            # soon as they have handed its results over (server/workers.py)
            asyncio.get_running_loop().call_soon(self._start)

    @property
    def large_in_flight(self) -> int:
        return self._large

    def _start(self) -> None:
        self._scheduled = False
        if self._large:
            return  # the large request in flight now trims when it ends
        if self._running:
            self._again = True
            return
        self._running = True
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="maskserve-trim")
        loop = asyncio.get_running_loop()
        loop.run_in_executor(self._executor, self._run).add_done_callback(self._done)

    def _run(self) -> int:
        assert self._allocator is not None
        before = resident_bytes()
        self._allocator.trim()
        return max(0, before - resident_bytes())

    def _done(self, future: asyncio.Future[int]) -> None:
        self._running = False
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            log.warning("malloc_trim failed: %s", error)
        elif self._on_trim is not None:
            self._on_trim(future.result())
        if self._again:
            self._again = False
            self._start()
        elif self._large == 0 and self._loose:
            assert self._allocator is not None
            self._loose = False
            self._allocator.tighten()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False)
