"""ASGI middleware: an HTTP request whose body grows large is tracked by the service's
:class:`~maskserve.memory_release.MemoryRelease` until its answer is sent, so that the
memory its body took is given back to the kernel once it is answered (refusals included:
a 63 MiB body of junk costs as much to receive as a valid one)."""

from __future__ import annotations

from typing import Any

from maskserve.api.body import counted
from maskserve.memory_release import MemoryRelease

Scope = dict[str, Any]


class LargeBodyTracker:
    def __init__(self, app: Any, memory: MemoryRelease) -> None:
        self.app = app
        self.memory = memory

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.memory.enabled:
            await self.app(scope, receive, send)
            return
        large = False

        def observe(size: int) -> None:
            nonlocal large
            if not large and self.memory.is_large(size):
                large = True
                self.memory.begin()

        try:
            await self.app(scope, counted(receive, observe), send)
        finally:
            if large:
                self.memory.end()
