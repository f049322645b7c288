"""Dynamic batching: one queue per model, shared by every protocol and every worker.

A batch closes when it holds ``max_batch_size`` requests or ``max_queue_delay_ms`` after
its *first* request arrived (so under load, when requests already waited while workers
were busy, it closes at once with whatever is queued).  Workers call :meth:`next_batch`
concurrently; an ``asyncio.Lock`` lets one of them form a batch at a time while the others
compute, so every worker drains the same queue.

Requests whose future is done before they are taken (cancelled by a disconnected client,
or failed by an expired deadline) never reach the model.

A request may bring a *finisher*: its per-request work after the shared forward pass
(selection and RLE encoding). A worker whose queue is empty when its batch ends runs the
finishers itself, on its own thread, instead of handing them to the service's pool: it
would sit idle anyway, and a lone request saves two thread hops (``ItemOutcome.finished``).

Waiting for company only pays when company is coming. With ``predict_arrivals`` (the
default) a batch whose queue has run dry closes at once, before its delay, unless at
least :data:`ARRIVAL_WAIT_FRACTION` of the recent inter-arrival gaps were shorter than
``max_queue_delay_ms``. For Poisson traffic that fraction estimates the probability that
another request arrives within the delay; a lone closed-loop client (every gap is a whole
round trip) never waits, while bursts (several clients answered by one batch send again
together) still batch. Until :data:`MIN_GAPS` gaps are known the batcher waits as usual.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from maskserve.batch_cost import BatchCostModel
from maskserve.drain_rate import DrainRate
from maskserve.errors import (
    DeadlineExceededError,
    MaskserveError,
    ModelNotReadyError,
    OverloadedError,
)
from maskserve.metrics import Metrics
from maskserve.models.types import Detections

ARRIVAL_WAIT_FRACTION = 1 / 3
MIN_GAPS = 4
GAP_HISTORY = 32


Finisher = Callable[[Detections], Any]


@dataclass(frozen=True)
class ItemOutcome:
    """What a request gets back from its batch (``finished``: its finisher's return value,
    when the worker ran it; None when the caller must finish). ``detections`` is the
    backend's answer for the request: Detections, or named arrays for a tensor model."""

    detections: Detections | Any
    queue_s: float
    inference_s: float
    batch_size: int
    finished: Any = None


PRIORITY_LEVELS = 3
DEFAULT_PRIORITY = 2
"""Request priorities as Triton numbers them: 1 is served first, 0 means the default level;
numbers past the last level count as the last."""


def priority_rank(priority: int) -> int:
    return min(priority or DEFAULT_PRIORITY, PRIORITY_LEVELS)


@dataclass(eq=False)
class BatchItem:
    image: np.ndarray | Any  # decoded pixels, or named arrays for a tensor model
    deadline: float
    future: asyncio.Future[ItemOutcome]
    enqueued_at: float
    started_at: float = 0.0
    finish: Finisher | None = None
    rank: int = 0

    @property
    def live(self) -> bool:
        return not self.future.done()

    def resolve(self, outcome: ItemOutcome) -> None:
        if not self.future.done():
            self.future.set_result(outcome)

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


class DynamicBatcher:
    """The bounded queue of one model, cut into batches on demand."""

    def __init__(
        self,
        model: str,
        max_batch_size: int,
        max_queue_delay_ms: float,
        max_queue_size: int,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        predict_arrivals: bool = True,
        cost_model: BatchCostModel | None = None,
        max_queue_wait_s: float | None = None,
        workers: int = 1,
        max_queue_wait_batches: float | None = None,
    ) -> None:
        if max_batch_size < 1 or max_queue_size < 1 or max_queue_delay_ms < 0:
            raise ValueError("need max_batch_size >= 1, max_queue_size >= 1, delay >= 0")
        self.model = model
        self.max_batch_size = max_batch_size
        self.max_queue_delay_s = max_queue_delay_ms / 1000.0
        self.max_queue_size = max_queue_size
        self._metrics = metrics
        self._clock = clock
        self._queue: collections.deque[BatchItem] = collections.deque()
        self._arrived = asyncio.Event()
        self._forming = asyncio.Lock()
        self._closed: MaskserveError | None = None
        self._no_company = False  # draining: batches close at once (see stop_waiting)
        self._predict_arrivals = predict_arrivals
        self._gaps: collections.deque[float] = collections.deque(maxlen=GAP_HISTORY)
        self._last_arrival: float | None = None
        self.cost_model = cost_model  # adaptive batching: it sets each batch's limit
        self.max_queue_wait_s = max_queue_wait_s
        self.max_queue_wait_batches = max_queue_wait_batches
        self.workers = max(1, workers)
        self.drain_rate = DrainRate(clock)
        self._preparing = 0  # admitted, being decoded: see preparing()
        self._running: collections.deque[float] = collections.deque(maxlen=self.workers)

    @property
    def depth(self) -> int:
        """Requests waiting (not yet taken into a batch)."""
        return len(self._queue)

    async def submit(
        self,
        image: np.ndarray,
        deadline: float,
        finish: Finisher | None = None,
        priority: int = 0,
    ) -> ItemOutcome:
        """Queue ``image`` and wait for its share of a batch's result.

        Cancelling the caller cancels the request's future, which takes it off the queue.
        """
        return await self.enqueue(image, deadline, finish, priority)

    def enqueue(
        self,
        image: np.ndarray,
        deadline: float,
        finish: Finisher | None = None,
        priority: int = 0,
    ) -> asyncio.Future[ItemOutcome]:
        """Queue ``image``; its future resolves to the outcome (or fails).

        Raises OverloadedError at once when the queue is full and DeadlineExceededError
        when ``deadline`` (``time.monotonic()`` seconds, or the injected ``clock``'s) has
        passed; the future fails with DeadlineExceededError if it passes before a worker
        takes the request.  Cancelling the future removes the request from the queue.
        """
        self.admit(deadline)
        future: asyncio.Future[ItemOutcome] = asyncio.get_running_loop().create_future()
        item = BatchItem(image, deadline, future, enqueued_at=self._clock(), finish=finish)
        item.rank = priority_rank(priority)
        self._record_arrival(item.enqueued_at)
        future.add_done_callback(lambda _: self._forget(item))
        self._insert(item)
        self._arrived.set()
        self._set_depth()
        return future

    def admit(self, deadline: float) -> None:
        """Raise what :meth:`enqueue` would (closed, full, deadline passed, too long a wait),
        without queueing: called before a request's costly preparation (decoding), so that
        a request refused under overload costs the server almost nothing."""
        if self._closed is not None:
            raise type(self._closed)(str(self._closed))
        if len(self._queue) >= self.max_queue_size:
            raise OverloadedError(
                f"model {self.model!r} is overloaded: {len(self._queue)} requests already "
                f"queued (max_queue_size {self.max_queue_size}); retry later",
                retry_after_s=self.retry_after_s(),
            )
        now = self._clock()
        if deadline <= now:
            raise DeadlineExceededError(f"deadline passed before model {self.model!r} queued it")
        self._admit_by_time(now, deadline)

    @contextlib.contextmanager
    def preparing(self) -> Iterator[None]:
        """Around an admitted request's preparation: it counts as queued in the wait
        estimate, so a burst is not admitted on the estimate of an empty queue."""
        self._preparing += 1
        try:
            yield
        finally:
            self._preparing -= 1

    def _insert(self, item: BatchItem) -> None:
        """Behind every queued request of the same or a better (lower) rank: FIFO within a
        priority level; a higher level overtakes waiting requests, never a running batch."""
        position = len(self._queue)
        while position > 0 and self._queue[position - 1].rank > item.rank:
            position -= 1
        self._queue.insert(position, item)

    def estimated_wait_s(self) -> float | None:
        """Seconds until a request queued now has its answer: what is left of the batches
        in progress, the batches ahead of it and its own, at the measured costs, shared by
        the workers; None until a cost is measured (admission then bounds only the count)."""
        if self.cost_model is None or (full := self._cost(self.cost_model.limit)) is None:
            return None
        waiting = len(self._queue) + self._preparing + 1
        batches = math.ceil(waiting / self.cost_model.limit)
        own = self._cost(waiting) if batches == 1 else None  # a lone partial batch is cheaper
        ahead = own if own is not None else math.ceil(batches / self.workers) * full
        return ahead + self._running_left()

    def _cost(self, size: int) -> float | None:
        """The measured seconds of a batch of ``size``: of the smallest measured size that
        holds it, else of the chosen limit."""
        model = self.cost_model
        if model is None:
            return None
        for candidate in model.sizes:
            if candidate >= size and (seconds := model.batch_seconds(candidate)) is not None:
                return seconds
        return model.batch_seconds(model.limit)

    def _running_left(self) -> float:
        """What is left of the batches in progress when every worker is busy (each batch
        expected to end at its measured cost; one past its end counts as done)."""
        if len(self._running) < self.workers:
            return 0.0
        return max(0.0, min(self._running) - self._clock())

    def retry_after_s(self) -> float | None:
        """When a refused client should come back: once the queue ahead of it has drained
        at the measured rate (before any is measured: the estimated wait, if known)."""
        drained = self.drain_rate.seconds_to_drain(len(self._queue))
        return drained if drained is not None else self.estimated_wait_s()

    def _admit_by_time(self, now: float, deadline: float) -> None:
        """Refuse at once what would wait past its deadline, ``max_queue_wait_s`` or
        ``max_queue_wait_batches`` batch times: a fast 503 beats a slow 504, and keeps the
        wait of admitted requests bounded (in batch times: whatever the machine's speed)."""
        wait = self.estimated_wait_s()
        if wait is None:
            return
        alone = self._cost(1) or 0.0
        if alone > deadline - now:  # not the load: the deadline is shorter than one batch
            raise DeadlineExceededError(
                f"the request's deadline leaves {1e3 * (deadline - now):.1f} ms, less than "
                f"model {self.model!r} takes for one request alone ({1e3 * alone:.0f} ms)"
            )
        allowed = deadline - now
        if self.max_queue_wait_s is not None:
            allowed = min(allowed, self.max_queue_wait_s)
        if self.max_queue_wait_batches and self.cost_model is not None:
            batch_s = self.cost_model.batch_seconds(self.cost_model.limit) or 0.0
            allowed = min(allowed, self.max_queue_wait_batches * batch_s)
        if wait > allowed:
            raise OverloadedError(
                f"model {self.model!r} is overloaded: a request queued now would wait about "
                f"{wait:.1f} s, more than the {allowed:.1f} s it can; retry later",
                retry_after_s=self.retry_after_s(),
            )

    async def next_batch(self) -> list[BatchItem] | None:
        """The next batch of live requests (at least one), or None once closed."""
        async with self._forming:
            while True:
                first = await self._take_first()
                if first is None:
                    return None
                limit = self.cost_model.next_limit() if self.cost_model else self.max_batch_size
                close_at = first.enqueued_at + self.max_queue_delay_s
                batch = [first]
                try:
                    await self._fill(batch, close_at, limit)
                except asyncio.CancelledError:  # a stopping worker leaves none unanswered
                    for item in batch:
                        item.fail(ModelNotReadyError(f"model {self.model!r} is shutting down"))
                    raise
                now = self._clock()
                live = [item for item in batch if self._still_wanted(item, now)]
                if live:
                    self.drain_rate.record(len(live))
                    self._running.append(now + (self._cost(len(live)) or 0.0))
                    for item in live:
                        item.started_at = now
                    if self._metrics is not None:
                        for item in live:
                            self._metrics.queue_duration.labels(self.model).observe(
                                now - item.enqueued_at
                            )
                    return live

    def stop_waiting(self) -> None:
        """Draining: no new request will come, so batches stop waiting for company and
        what is queued runs now instead of after ``max_queue_delay_ms``."""
        self._no_company = True
        self._arrived.set()

    def close(self, error: MaskserveError | None = None) -> None:
        """Refuse new requests, fail the queued ones, and end every ``next_batch`` wait."""
        self._closed = error or ModelNotReadyError(f"model {self.model!r} is shutting down")
        while self._queue:
            self._queue.popleft().fail(type(self._closed)(str(self._closed)))
        self._arrived.set()
        self._set_depth()

    async def _take_first(self) -> BatchItem | None:
        while True:
            item = self._pop_live()
            if item is not None:
                return item
            if self._closed is not None:
                return None
            self._arrived.clear()
            await self._arrived.wait()

    async def _fill(self, batch: list[BatchItem], close_at: float, limit: int) -> list[BatchItem]:
        """Add queued requests until the batch holds ``limit`` or ``close_at`` passes."""
        while len(batch) < limit:
            item = self._pop_live()
            if item is not None:
                batch.append(item)
                continue
            remaining = close_at - self._clock()
            if remaining <= 0 or self._closed is not None or self._no_company:
                break
            if not self._company_expected():
                break
            self._arrived.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._arrived.wait()
            except TimeoutError:
                break
        return batch

    def _record_arrival(self, now: float) -> None:
        if self._last_arrival is not None:
            self._gaps.append(now - self._last_arrival)
        self._last_arrival = now

    def _company_expected(self) -> bool:
        """Whether another request is likely within the delay (see the module docstring)."""
        if not self._predict_arrivals or len(self._gaps) < MIN_GAPS:
            return True
        short = sum(gap < self.max_queue_delay_s for gap in self._gaps)
        return short >= ARRIVAL_WAIT_FRACTION * len(self._gaps)

    def _pop_live(self) -> BatchItem | None:
        now = self._clock()
        while self._queue:
            item = self._queue.popleft()
            if self._still_wanted(item, now):
                self._set_depth()
                return item
        self._set_depth()
        return None

    def _still_wanted(self, item: BatchItem, now: float) -> bool:
        """False for cancelled requests and, failing them, for expired ones."""
        if not item.live:
            return False
        if item.deadline <= now:
            item.fail(
                DeadlineExceededError(
                    f"deadline passed after {now - item.enqueued_at:.3f} s in the queue of "
                    f"model {self.model!r}"
                )
            )
            return False
        return True

    def _forget(self, item: BatchItem) -> None:
        """Done-callback: a request cancelled while queued leaves the queue at once."""
        if item.future.cancelled():
            try:
                self._queue.remove(item)
            except ValueError:
                return
            self._set_depth()

    def _set_depth(self) -> None:
        if self._metrics is not None:
            self._metrics.queue_depth.labels(self.model).set(len(self._queue))
