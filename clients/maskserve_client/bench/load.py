"""Closed and open loops that drive a target for one load level.

Closed loop: ``concurrency`` workers send back to back, so exactly that many requests are
in flight. The measured window opens when the warm-up ends (at an answer) and closes at
the answer that completes the level; the workers keep the load up until then, and the
answers still in flight at the close are awaited but not counted, so the load does not
drain inside the window.

Open loop: requests are sent at Poisson arrival times (:mod:`.schedule`) however many are
still unanswered. The window runs from the first measured arrival to the last measured
answer, every measured request is awaited, and a request's latency counts from its
scheduled arrival, so time it spent waiting on a late client is not hidden.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from maskserve_client.bench.schedule import poisson_arrivals
from maskserve_client.bench.targets import Outcome

Send = Callable[[bytes], Awaitable[Outcome]]
#: Called once per warm-up or measured answer (the progress bar).
Tick = Callable[[], None]


def _no_tick() -> None:
    pass


@dataclass(frozen=True)
class Plan:
    """How a level starts (warm-up) and ends: a count of requests, or seconds."""

    requests: int | None = None
    duration_s: float | None = None
    warmup_requests: int = 0
    warmup_s: float = 0.0

    def __post_init__(self) -> None:
        if (self.requests is None) == (self.duration_s is None):
            raise ValueError("a plan needs exactly one of requests and duration_s")

    def warm(self, answered: int, elapsed: float) -> bool:
        """Whether the warm-up is over after ``answered`` requests, ``elapsed`` seconds."""
        return answered >= self.warmup_requests and elapsed >= self.warmup_s

    def full(self, measured: int, elapsed: float) -> bool:
        """Whether the level is complete with ``measured`` requests over ``elapsed`` s."""
        if self.requests is not None:
            return measured >= self.requests
        assert self.duration_s is not None
        return elapsed >= self.duration_s


@dataclass(frozen=True, slots=True)
class Record:
    #: ``perf_counter`` seconds: sent (closed loop) or scheduled (open loop), answered.
    started: float
    finished: float
    outcome: Outcome


@dataclass
class Window:
    """The measured part of a level."""

    records: list[Record] = field(default_factory=list)
    opened_at: float | None = None
    closed_at: float | None = None
    #: Answers outside the window: warm-up, and the closed loop's tail.
    unmeasured: int = 0

    @property
    def seconds(self) -> float:
        if self.opened_at is None or self.closed_at is None:
            return 0.0
        return self.closed_at - self.opened_at


class _ClosedLoop:
    def __init__(
        self, send: Send, images: Sequence[bytes], plan: Plan, tick: Tick, start: float
    ) -> None:
        self.send, self.images, self.plan, self.tick = send, images, plan, tick
        self.start = start
        self.window = Window(opened_at=start if plan.warm(0, 0.0) else None)
        self.issued = 0
        self.warmed = 0
        self.stopping = False

    async def worker(self) -> None:
        while not self.stopping:
            image = self.images[self.issued % len(self.images)]
            self.issued += 1
            began = time.perf_counter()
            outcome = await self.send(image)
            if self.answered(Record(began, time.perf_counter(), outcome)):
                self.tick()

    def answered(self, record: Record) -> bool:
        """Count an answer; False for those after the close (not shown as progress)."""
        window = self.window
        if self.stopping:
            window.unmeasured += 1
            return False
        if window.opened_at is None:
            window.unmeasured += 1
            self.warmed += 1
            if self.plan.warm(self.warmed, record.finished - self.start):
                window.opened_at = record.finished
        else:
            window.records.append(record)
            if self.plan.full(len(window.records), record.finished - window.opened_at):
                window.closed_at = record.finished
                self.stopping = True
        return True


async def closed_loop(
    send: Send, images: Sequence[bytes], concurrency: int, plan: Plan, tick: Tick = _no_tick
) -> Window:
    """``concurrency`` requests in flight until ``plan`` is complete."""
    loop = _ClosedLoop(send, images, plan, tick, time.perf_counter())
    await asyncio.gather(*(loop.worker() for _ in range(concurrency)))
    return loop.window


def plan_arrivals(plan: Plan, rate: float, rng: np.random.Generator) -> tuple[list[float], int]:
    """The level's arrival times (seconds from its start) and how many open it (warm-up).

    The warm-up takes the first ``warmup_requests`` arrivals or those before
    ``warmup_s``; the measured ones follow until ``plan`` is full (its duration counts
    from the first measured arrival).
    """
    times: list[float] = []
    warmup: int | None = None
    for at in poisson_arrivals(rate, rng):
        if warmup is None and plan.warm(len(times), at):
            warmup = len(times)
        if warmup is not None:
            measured = len(times) - warmup
            if plan.full(measured, at - times[warmup] if measured else 0.0):
                return times, warmup
        times.append(at)
    raise AssertionError("unreachable: the arrivals never end")


async def open_loop(
    send: Send,
    images: Sequence[bytes],
    arrivals: Sequence[float],
    warmup: int,
    tick: Tick = _no_tick,
) -> Window:
    """Send request ``i`` at ``arrivals[i]`` seconds; the first ``warmup`` are not measured."""
    window = Window()
    start = time.perf_counter()
    slots: list[Record | None] = [None] * len(arrivals)

    async def one(number: int, due: float) -> None:
        outcome = await send(images[number % len(images)])
        slots[number] = Record(due, time.perf_counter(), outcome)
        tick()

    tasks = []
    for number, at in enumerate(arrivals):
        due = start + at
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(number, due)))
    await asyncio.gather(*tasks)
    measured = [record for record in slots[warmup:] if record is not None]
    window.records = measured
    window.unmeasured = warmup
    if measured:
        window.opened_at = start + arrivals[warmup]
        window.closed_at = max(record.finished for record in measured)
    return window
