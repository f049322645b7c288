"""COCO run-length encoded masks in pure numpy (no pycocotools needed).

A mask of height H and width W is read in column-major order (down column 0, then
column 1, ...) and stored as the lengths of its constant runs, starting with a run of
zeros (of length 0 when the first pixel is set). pycocotools compresses those run lengths
into an ASCII string: from the fourth run on, each value is stored as the difference to
the run two places earlier (the previous run of the same colour), and every value is
written as little-endian signed 5-bit groups, one character ``48 + group`` per group,
``+ 32`` while more groups follow.

:func:`decode` accepts that string (``str`` or ``bytes``) or the raw run lengths the gRPC
API can send; :func:`encode` produces pycocotools-identical strings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

_FIRST_CHAR = 48
_LAST_CHAR = 111
_MORE = 0x20
_GROUP = 0x1F
_SIGN = 0x10
#: Run lengths are uint32, so a delta needs 7 chunks; allow more, up to what int64 holds.
_MAX_CHUNKS = 12

Counts = str | bytes | Sequence[int] | np.ndarray


class RleError(ValueError):
    """The RLE is malformed or does not match its declared size."""


def decompress(counts: str | bytes) -> np.ndarray:
    """A pycocotools compressed ``counts`` string → its run lengths (int64)."""
    raw = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    if not raw:
        return np.zeros(0, dtype=np.int64)
    chars = np.frombuffer(raw, dtype=np.uint8).astype(np.int64)
    if chars.min() < _FIRST_CHAR or chars.max() > _LAST_CHAR:
        raise RleError("compressed counts contain characters outside ASCII 48..111")
    chars -= _FIRST_CHAR
    last = (chars & _MORE) == 0
    if not last[-1]:
        raise RleError("compressed counts end in the middle of a value")
    # Each value's chunks are consecutive; chunk k of a value carries bits 5k..5k+4.
    ends = np.flatnonzero(last)
    starts = np.concatenate(([0], ends[:-1] + 1))
    value_of_char = np.repeat(np.arange(ends.size), ends - starts + 1)
    position = np.arange(chars.size) - starts[value_of_char]
    if position.max() >= _MAX_CHUNKS:
        raise RleError(f"a compressed value is longer than {_MAX_CHUNKS} characters")
    values = np.add.reduceat((chars & _GROUP) << (5 * position), starts)
    negative = (chars[ends] & _SIGN) != 0
    values[negative] -= np.int64(1) << (5 * (position[ends[negative]] + 1))
    return _undo_deltas(values)


def _undo_deltas(x: np.ndarray) -> np.ndarray:
    """From the 4th value on, each is relative to the one two earlier: prefix sums per parity."""
    runs = x.copy()
    runs[1::2] = np.cumsum(x[1::2])
    runs[2::2] = np.cumsum(x[2::2])
    return runs


def compress(runs: Sequence[int] | np.ndarray) -> str:
    """Run lengths → the pycocotools compressed ``counts`` string."""
    values = np.asarray(runs, dtype=np.int64).ravel()
    deltas = values.copy()
    deltas[3:] -= values[1:-2]
    out = bytearray()
    for value in deltas.tolist():
        while True:
            chunk = value & _GROUP
            value >>= 5
            more = value != -1 if chunk & _SIGN else value != 0
            out.append(_FIRST_CHAR + chunk + (_MORE if more else 0))
            if not more:
                break
    return out.decode("ascii")


def runs_of(mask: np.ndarray) -> np.ndarray:
    """Uncompressed COCO run lengths (uint32) of a 2-D mask (nonzero = set)."""
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D [H, W], got shape {mask.shape}")
    flat = np.ravel(mask != 0, order="F")
    if flat.size == 0:
        return np.zeros(1, dtype=np.uint32)
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate(([0], changes, [flat.size]))
    runs = np.diff(edges)
    if flat[0]:
        runs = np.concatenate(([0], runs))
    return runs.astype(np.uint32)


def encode(mask: np.ndarray) -> dict[str, Any]:
    """A 2-D mask → ``{"size": [H, W], "counts": str}`` as pycocotools would write it."""
    height, width = mask.shape if mask.ndim == 2 else (0, 0)
    return {"size": [int(height), int(width)], "counts": compress(runs_of(mask))}


def decode_counts(counts: Counts, size: Sequence[int]) -> np.ndarray:
    """Compressed (``str``/``bytes``) or raw run lengths of a ``size = (H, W)`` mask → bool [H, W].

    Unlike pycocotools, the runs must add up to exactly H·W (pycocotools reads past the
    end of short runs into uninitialised memory).  The result is a Fortran-ordered view;
    ``np.ascontiguousarray`` it if C order matters.
    """
    height, width = int(size[0]), int(size[1])
    if height < 0 or width < 0:
        raise RleError(f"negative mask size {height}x{width}")
    if isinstance(counts, str | bytes | bytearray | memoryview):
        runs = decompress(bytes(counts) if not isinstance(counts, str) else counts)
    else:
        runs = np.asarray(counts, dtype=np.int64).ravel()
    if runs.size and runs.min() < 0:
        raise RleError("negative run length")
    if int(runs.sum()) != height * width:
        raise RleError(
            f"runs cover {int(runs.sum())} pixels, a {height}x{width} mask has {height * width}"
        )
    colours = np.zeros(runs.size, dtype=bool)
    colours[1::2] = True
    flat = np.repeat(colours, runs)
    return flat.reshape(width, height).T


def decode(rle: Mapping[str, Any]) -> np.ndarray:
    """``{"size": [H, W], "counts": ...}`` (compressed or raw runs) → bool [H, W]."""
    return decode_counts(rle["counts"], rle["size"])


def area(rle: Mapping[str, Any]) -> int:
    """Number of set pixels, from the runs alone (no mask is built)."""
    counts = rle["counts"]
    runs = decompress(counts) if isinstance(counts, str | bytes) else np.asarray(counts)
    return int(np.asarray(runs, dtype=np.int64)[1::2].sum())
