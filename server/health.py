"""Faults contained: a watchdog for batches that never finish, and each model's health.

A forward that hangs (a driver stall, a deadlock in a custom op) would hold its worker —
and every request queued behind it — forever. The worker guards each batch with a
deadline (``worker_watchdog_s``): past it the batch's requests fail with 500/INTERNAL and
the worker is replaced by a fresh thread with a fresh model copy. Python cannot kill the
hung thread: it is abandoned, and its memory (one model copy, one batch) is the price, so
a worker is replaced at most :data:`MAX_REPLACEMENTS` times before it retires.

A model whose batches keep failing is marked not ready after
:data:`FAILURES_TO_UNREADY` failed batches in a row: ``/readyz`` and
``/v2/models/{m}/ready`` report it, requests get a fast 503, and a probe (one warm-up
image through a worker, every :data:`PROBE_INTERVAL_S`) marks it ready again once it
succeeds.
"""

from __future__ import annotations

import logging

from maskserve.errors import InferenceError
from maskserve.metrics import Metrics

log = logging.getLogger(__name__)

FAILURES_TO_UNREADY = 5
PROBE_INTERVAL_S = 2.0
MAX_REPLACEMENTS = 3


class WorkerHungError(InferenceError):
    """A batch outran the watchdog; its worker is being replaced."""


class ModelHealth:
    """Consecutive failed batches of one model, and whether it is fit to serve."""

    def __init__(self, model: str, metrics: Metrics | None = None) -> None:
        self.model, self.metrics = model, metrics
        self.healthy = True
        self.consecutive_failures = 0
        self.reason = ""

    def batch_done(self, ok: bool, reason: str = "") -> bool:
        """Record a batch; True when this failure just made the model unhealthy."""
        if ok:
            self.consecutive_failures = 0
            if not self.healthy:
                self.recovered()
            return False
        self.consecutive_failures += 1
        if self.healthy and self.consecutive_failures >= FAILURES_TO_UNREADY:
            self.healthy = False
            self.reason = f"its last {self.consecutive_failures} batches failed ({reason})"
            log.error("model %r marked not ready: %s", self.model, self.reason)
            self.publish()
            return True
        return False

    def recovered(self) -> None:
        self.healthy, self.consecutive_failures, self.reason = True, 0, ""
        log.info("model %r is ready again: its probe succeeded", self.model)
        self.publish()

    def publish(self) -> None:
        if self.metrics is not None:
            self.metrics.model_ready.labels(self.model).set(1 if self.healthy else 0)
