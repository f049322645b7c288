"""Keep glibc malloc from giving freed tensor memory back to the kernel between batches.

A forward pass allocates and frees tens of megabytes of activations. With glibc's default
settings much of that memory goes back to the kernel after every batch (large blocks are
``mmap``-ed and unmapped; a thread's heap is trimmed), so the next batch page-faults it in
again and the kernel zeroes every page. Measured on the shipped ``yolact_shapes`` (batch 1,
2 cores): 2,300–4,400 minor faults (9–17 MB zeroed) per forward pass, on the main thread
and on a worker thread alike; with the settings below, 0 faults after warm-up and the
forward about 7 % faster (``benchmarks/bench_allocator.py``: 2,780 → 0 faults, 1.07×).

The settings: no ``mmap`` below 1 GiB (glibc's own threshold adapts, but only up to
32 MiB) and no trimming of the heap top. The cost is that the process's resident memory
stays at its peak, which is what jemalloc and tcmalloc — the allocators TorchServe and
Intel's CPU guides recommend for inference — do too. They take effect when called,
for every thread. A worker thread allocates from its own arena, made of 64 MiB heaps that
glibc unmaps when they empty whatever the settings; for models whose activations outgrow
that, ``MALLOC_ARENA_MAX=1`` in the environment (read only at process start) puts every
thread on the main arena (measured: ``yolact_resnet50`` at 550 px, 25,000 → 0 faults per
forward, but only ~1 % faster, so it is not set by default).
Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os

log = logging.getLogger(__name__)

# mallopt parameters, from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
NEVER_TRIM = (1 << 31) - 1
SETTINGS = ((M_MMAP_THRESHOLD, 1 << 30), (M_TRIM_THRESHOLD, NEVER_TRIM))
GLIBC_TRIM_THRESHOLD = 128 * 1024  # glibc's own default

_retaining = False


def retaining() -> bool:
    """Whether :func:`retain_freed_memory` has been applied in this process."""
    return _retaining


def is_glibc() -> bool:
    return hasattr(os, "confstr") and "glibc" in (_confstr("CS_GNU_LIBC_VERSION") or "")


def retain_freed_memory() -> bool:
    """Apply :data:`SETTINGS` through ``mallopt``; True if glibc accepted every one."""
    if not is_glibc():
        log.info("not glibc: malloc settings left as they are")
        return False
    global _retaining
    accepted = all(mallopt(parameter, value) for parameter, value in SETTINGS)
    if not accepted:
        log.warning("glibc refused a malloc setting; freed memory may go back to the kernel")
    _retaining = accepted
    return accepted


def mallopt(parameter: int, value: int) -> bool:
    """glibc's ``mallopt`` (process-wide, effective at once for every thread)."""
    return bool(libc().mallopt(parameter, value) == 1)


@functools.cache
def libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def _confstr(name: str) -> str | None:
    try:
        return os.confstr(name)
    except (ValueError, OSError):
        return None
