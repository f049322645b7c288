"""retain_freed_memory: the shipped model's forward pass stops page-faulting its memory.

Each side runs in a fresh interpreter, so neither inherits the other's malloc state.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

import pytest

from maskserve.allocator import is_glibc

FORWARD_FAULTS = """
import json, resource, sys
import numpy as np, torch
from maskserve.allocator import retain_freed_memory
from maskserve.models.registry import DEFAULT_MODEL, ZOO_DIR, ModelSpec, build_backend
if sys.argv[1] == "retain":
    assert retain_freed_memory()
torch.set_num_threads(1)
# the NCHW path: channels-last convolutions (the CPU default) no longer fault either way
spec = ModelSpec.from_folder(ZOO_DIR / DEFAULT_MODEL)
backend = build_backend(spec, torch.device("cpu"), channels_last=False)
image = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
faults = []
for _ in range(9):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    backend.infer([image], 100)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps(faults[5:]))
"""


def forward_faults(mode: str) -> list[int]:
    done = subprocess.run(
        [sys.executable, "-c", FORWARD_FAULTS, mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not is_glibc(), reason="mallopt is glibc's")
def test_retained_memory_is_reused_without_page_faults() -> None:
    default, retained = forward_faults("default"), forward_faults("retain")
    typical = statistics.median(default)
    assert typical > 500, f"the default allocator should fault here: {default}"
    assert statistics.median(retained) < 0.05 * typical, f"default {default}, retained {retained}"
