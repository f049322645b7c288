"""Served against in-process, measured in interleaved rounds.

On a shared 2-core machine the speed of the same forward pass drifts by 10–20 % within
minutes, which swamps a few milliseconds of serving overhead (or a few per cent of
throughput) when the two sides are timed minutes apart. Here every round measures each
contender once, back to back (the server idles while this process computes, and the other
way round), in an order that rotates from round to round, and the result is the median
over rounds of the per-round difference or ratio, so drift slower than a round cancels.

- :func:`interleave`: latency at concurrency 1, one request per contender per round, on
  the same image.
- :func:`throughput_rounds`: images/s, one block per contender per round (in-process
  batches; a served closed-loop window at high concurrency).
- :func:`timed_rounds`: in-process calls only, seconds per call, order alternating.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Local = Callable[[int], object]  # image number → runs in this process
Remote = Callable[[int], Awaitable[dict[str, float] | str]]  # a harness Send
Block = Callable[[], Awaitable[float]]  # measures one block, returns images/s


@dataclass
class Rounds:
    """Latencies by contender, one per round, in round order."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    def p50(self, name: str) -> float:
        return statistics.median(self.seconds[name])

    def gap(self, name: str, baseline: str) -> float:
        """Median over rounds of ``name``'s latency minus ``baseline``'s."""
        pairs = zip(self.seconds[name], self.seconds[baseline], strict=True)
        return statistics.median(a - b for a, b in pairs)


async def interleave(local: dict[str, Local], remote: dict[str, Remote], rounds: int) -> Rounds:
    """Run every contender once per round on image ``round``; a failed remote call is
    counted and its round dropped for every contender (pairs stay aligned)."""
    names = [*local, *remote]
    result = Rounds({n: [] for n in names}, {n: 0 for n in remote})
    for number in range(rounds):
        shift = number % len(names)
        order = names[shift:] + names[:shift]
        timed: dict[str, float] = {}
        for name in order:
            began = time.perf_counter()
            if name in local:
                local[name](number)
            elif isinstance(await remote[name](number), str):
                result.errors[name] += 1
                continue
            timed[name] = time.perf_counter() - began
        if len(timed) == len(names):
            for name, seconds in timed.items():
                result.seconds[name].append(seconds)
    return result


def report(result: Rounds, baselines: list[str], served: list[str]) -> list[str]:
    """Markdown lines: p50 per contender and each served one's gap to each baseline."""
    kept = len(next(iter(result.seconds.values())))
    head = " | ".join(f"gap to {b} (median of pairs)" for b in baselines)
    lines = [
        f"paired rounds kept: {kept}; errors: {result.errors}",
        "",
        f"| contender | p50 ms | {head} |",
        "|---|---|" + "---|" * len(baselines),
    ]
    for name in baselines:
        lines.append(f"| {name} | {1e3 * result.p50(name):.1f} |" + " |" * len(baselines))
    for name in served:
        gaps = " | ".join(f"{1e3 * result.gap(name, b):+.1f} ms" for b in baselines)
        lines.append(f"| {name} | {1e3 * result.p50(name):.1f} | {gaps} |")
    return lines


async def throughput_rounds(blocks: dict[str, Block], rounds: int) -> dict[str, list[float]]:
    """Images/s of every block once per round, in rotating order."""
    names = list(blocks)
    result: dict[str, list[float]] = {name: [] for name in names}
    for number in range(rounds):
        shift = number % len(names)
        for name in names[shift:] + names[:shift]:
            result[name].append(await blocks[name]())
    return result


def throughput_report(result: dict[str, list[float]], baseline: str) -> list[str]:
    """Markdown lines: median images/s per block and the median per-round ratio."""
    lines = [
        f"| block | rounds | median img/s | median per-round ratio to {baseline} |",
        "|---|---|---|---|",
    ]
    for name, values in result.items():
        ratios = [v / b for v, b in zip(values, result[baseline], strict=True)]
        ratio = "" if name == baseline else f"{statistics.median(ratios):.2f}x"
        lines.append(f"| {name} | {len(values)} | {statistics.median(values):.2f} | {ratio} |")
    return lines


def timed_rounds(
    runs: dict[str, Callable[[], Any]],
    rounds: int,
    check: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, list[float]]:
    """Seconds per call of each zero-argument run, in-process: round 0 warms up untimed,
    then the order alternates every round; ``check`` sees each round's answers by name."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for number in range(rounds + 1):
        names = list(runs) if number % 2 == 0 else list(reversed(runs))
        answers = {}
        for name in names:
            began = time.perf_counter()
            answers[name] = runs[name]()
            if number:
                times[name].append(time.perf_counter() - began)
        if check is not None:
            check(answers)
    return times


def median_lines(times: dict[str, list[float]], baseline: str) -> list[str]:
    """``name: N ms (median), R x`` per run, R = the baseline's median over this one's."""
    base = statistics.median(times[baseline])
    return [
        f"{name}: {statistics.median(values) * 1e3:.1f} ms (median), "
        f"{base / statistics.median(values):.2f}x"
        for name, values in times.items()
    ]
