"""Large requests give their memory back: one trim when the last of them finishes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading

import pytest

from maskserve.allocator import is_glibc
from maskserve.memory_release import MemoryRelease
from maskserve.pixel_budget import BYTES_PER_PIXEL, PixelBudget


class Trims:
    """A fake allocator that records its calls; a trim can be held inside its call."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    @property
    def calls(self) -> int:
        return self.events.count("trim")

    def loosen(self) -> None:
        self.events.append("loosen")

    def tighten(self) -> None:
        self.events.append("tighten")

    def trim(self) -> None:
        self.events.append("trim")
        self.entered.set()
        self.gate.wait(timeout=30)


def release(threshold: int, trims: Trims) -> tuple[MemoryRelease, asyncio.Queue[int]]:
    done: asyncio.Queue[int] = asyncio.Queue()
    return MemoryRelease(threshold, trims, done.put_nowait), done


def test_one_trim_when_the_last_large_request_ends() -> None:
    async def scenario() -> int:
        trims = Trims()
        memory, done = release(100, trims)
        with memory.hold(10):  # small: not tracked
            assert memory.large_in_flight == 0
        with memory.hold(100):
            with memory.hold(500):
                assert memory.large_in_flight == 2
            assert memory.large_in_flight == 1
        await asyncio.wait_for(done.get(), 30)
        memory.close()
        assert done.empty()
        return trims.events

    # free() gives heap tops back while large requests run, and stops after the trim
    assert asyncio.run(scenario()) == ["loosen", "trim", "tighten"]


def test_requests_ending_before_the_trim_starts_share_one_trim() -> None:
    async def scenario() -> list[str]:
        trims = Trims()
        memory, done = release(100, trims)
        with memory.hold(100):
            pass  # the trim is scheduled for the loop's next step...
        memory.begin()  # ...another large request comes and goes before it runs:
        memory.end()  # one trim covers both
        await asyncio.wait_for(done.get(), 30)
        with memory.hold(100):  # a later one: its own cycle, after the first has ended
            pass
        await asyncio.wait_for(done.get(), 30)
        memory.close()
        return trims.events

    # a second trim in the first cycle would come before its tighten
    assert asyncio.run(scenario()) == ["loosen", "trim", "tighten"] * 2


def test_a_request_ending_during_a_trim_trims_again_after_it() -> None:
    async def scenario() -> int:
        trims = Trims()
        trims.gate.clear()
        memory, done = release(100, trims)
        with memory.hold(100):
            pass
        await asyncio.to_thread(trims.entered.wait, 30)  # the first trim is running
        with memory.hold(100):
            pass
        await asyncio.sleep(0)  # let the scheduled start see the running trim
        trims.gate.set()
        await asyncio.wait_for(done.get(), 30)
        await asyncio.wait_for(done.get(), 30)
        memory.close()
        return trims.events

    assert asyncio.run(scenario()) == ["loosen", "trim", "trim", "tighten"]


def test_zero_threshold_turns_it_off() -> None:
    memory = MemoryRelease.for_this_process(0)
    assert not memory.enabled
    assert not memory.is_large(10**12)


def test_a_large_decoded_image_is_held_by_the_pixel_budget() -> None:
    async def scenario() -> None:
        trims = Trims()
        memory, done = release(3000, trims)
        budget = PixelBudget(10**9, memory)
        with budget.reserve(999, "m"):  # 2997 bytes decoded: small
            assert memory.large_in_flight == 0
        with budget.reserve(3000 // BYTES_PER_PIXEL, "m"):
            assert memory.large_in_flight == 1
        await asyncio.wait_for(done.get(), 30)
        memory.close()

    asyncio.run(scenario())


GIVE_BACK = """
import json, sys
from maskserve.allocator import retain_freed_memory
from maskserve.memory_release import GlibcAllocator, resident_bytes
assert retain_freed_memory()
base = resident_bytes()
blocks = [bytearray(8 << 20) for _ in range(32)]  # 256 MiB, every page touched
for block in blocks:
    block[::4096] = b"x" * len(block[::4096])
del blocks[::2]  # every other block: the free memory sits between live ones
grown = resident_bytes()
GlibcAllocator().trim()
print(json.dumps([base, grown, resident_bytes()]))
"""


@pytest.mark.skipif(not is_glibc(), reason="malloc_trim is glibc's")
def test_glibc_trim_returns_free_memory_between_live_blocks() -> None:
    done = subprocess.run(
        [sys.executable, "-c", GIVE_BACK], capture_output=True, text=True, timeout=60, check=True
    )
    base, grown, trimmed = json.loads(done.stdout.strip().splitlines()[-1])
    mib = 1 << 20
    assert grown - base > 200 * mib, (base, grown)
    # the 16 freed blocks (128 MiB) go back although live blocks sit above them
    assert grown - trimmed > 100 * mib, (base, grown, trimmed)
