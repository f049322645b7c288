"""One mask as COCO run-length encoding, typed.

``counts`` is pycocotools' compressed string (bytes, ASCII); ``runs`` the column-major
run lengths themselves (background first) when the encoder had them, so that a protocol
sending raw runs (gRPC's ``RLE_RAW_RUNS``) does not decompress the string it just built.
Equality and hashing ignore ``runs``: it is a cache of what ``counts`` says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from maskserve.masks.rle_string import decompress_counts


@dataclass(frozen=True)
class Rle:
    height: int
    width: int
    counts: bytes
    runs: np.ndarray | None = field(default=None, compare=False, repr=False)

    def run_lengths(self) -> np.ndarray:
        """The run lengths (int, background first), decompressed only if not kept."""
        return self.runs if self.runs is not None else decompress_counts(self.counts)

    def to_coco(self) -> dict[str, Any]:
        """pycocotools' dict: ``{"size": [H, W], "counts": "<compressed>"}``."""
        return {"size": [self.height, self.width], "counts": self.counts.decode("ascii")}

    @classmethod
    def from_coco(cls, rle: Mapping[str, Any]) -> Rle:
        height, width = (int(v) for v in rle["size"])
        counts = rle["counts"]
        return cls(height, width, counts.encode("ascii") if isinstance(counts, str) else counts)
