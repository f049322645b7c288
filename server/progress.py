"""A progress line on stderr for the long commands (predict, evaluate, export, training).

Drawn only when stderr is a terminal (logs and pipes stay clean), at most every 0.2 s:
``evaluate: 120/500 (24%) 3.1/s, ~2m left``. No dependency: tqdm is not one of ours.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

T = TypeVar("T")
REDRAW_S = 0.2


class Progress:
    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label, self.total, self.done = label, total, 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self._began = self._drawn = time.monotonic()

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if self.enabled and (now - self._drawn >= REDRAW_S or self.done >= self.total):
            self._drawn = now
            self.stream.write("\r" + self.line(now - self._began))
            if self.done >= self.total:
                self.stream.write("\n")
            self.stream.flush()

    def line(self, elapsed: float) -> str:
        rate = self.done / elapsed if elapsed > 0 else 0.0
        percent = 100 * self.done // max(1, self.total)
        text = f"{self.label}: {self.done}/{self.total} ({percent}%) {rate:.1f}/s"
        if 0 < self.done < self.total and rate > 0:
            text += f", ~{_duration((self.total - self.done) / rate)} left"
        return text + "   "


def _duration(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 90 else f"{seconds / 60:.0f}m"


def track(items: Iterable[T], total: int, label: str) -> Iterator[T]:
    """Yield ``items``, advancing a progress line after each."""
    progress = Progress(label, total)
    for item in items:
        yield item
        progress.advance()
