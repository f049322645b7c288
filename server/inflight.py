"""Work in flight (so that a drain can wait for it) and every request's answer counted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from maskserve.errors import MaskserveError
from maskserve.metrics import Metrics
from maskserve.statistics import Statistics

log = logging.getLogger(__name__)
UNKNOWN_MODEL_LABEL = "_unknown"  # metrics label for names that are not in the repository


class InFlight:
    """A count of requests being served (and of stream frames taken in, until their answers
    are written) with an event for "none left"."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def hold(self) -> None:
        self.count += 1
        self._idle.clear()

    def release(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self, grace_s: float) -> None:
        """Until nothing is in flight, or ``grace_s`` has passed (logged)."""
        if self.count == 0:
            return
        log.info("draining: waiting up to %.1f s for %d requests", grace_s, self.count)
        try:
            async with asyncio.timeout(grace_s):
                await self._idle.wait()
        except TimeoutError:
            log.warning("drain grace ended with %d requests still in flight", self.count)


class RequestAccounting:
    """Counts each answer in the metrics (status, duration, in flight) and in the model's
    statistics; ``known`` says whether a name is a model of the repository (other names
    share one label, so that clients cannot grow the metrics without bound)."""

    def __init__(
        self,
        metrics: Metrics,
        statistics: Statistics,
        inflight: InFlight,
        known: Callable[[str], bool],
    ) -> None:
        self.metrics, self.statistics, self.inflight = metrics, statistics, inflight
        self._known = known

    @contextlib.asynccontextmanager
    async def request(self, model: str, protocol: str) -> AsyncIterator[float]:
        """Around one request: in flight while it runs, then its answer counted with its
        status and duration (and a failure in the model's statistics); yields its start."""
        began = time.monotonic()
        known = self._known(model)
        label = model if known else UNKNOWN_MODEL_LABEL
        self.inflight.hold()
        self.metrics.inflight.labels(label).inc()
        status = "ok"
        try:
            yield began
        except MaskserveError as exc:
            status = exc.code
            if known:
                self.statistics.record_failure(model, time.monotonic() - began)
            raise
        except asyncio.CancelledError:
            status = "cancelled"
            raise
        except Exception:
            status = "internal"
            log.exception("unexpected error in a request to model %r", model)
            raise
        finally:
            self.metrics.requests_total.labels(label, protocol, status).inc()
            self.metrics.request_duration.labels(label, protocol).observe(time.monotonic() - began)
            self.metrics.inflight.labels(label).dec()
            self.inflight.release()

    def refused(self, model: str, protocol: str, code: str) -> None:
        """An answer the protocol layer gave before the request reached the service."""
        known = self._known(model)
        self.metrics.requests_total.labels(
            model if known else UNKNOWN_MODEL_LABEL, protocol, code
        ).inc()
        if known:
            self.statistics.record_failure(model, 0.0)
