"""COCO compressed-RLE strings (pycocotools' ``rleToString`` / ``rleFrString``), vectorised.

Format (pycocotools' ``maskApi.c`` rleToString): every run length ``c[i]`` becomes
``x[i] = c[i]`` for ``i <= 2`` and ``x[i] = c[i] - c[i-2]`` for ``i > 2`` (may be negative).
Each ``x`` is written as little-endian signed 5-bit groups, one character per group
(``48 + group``, plus 32 when another group follows).  Emission stops once the rest is pure
sign extension, i.e. a value needs the fewest ``n`` groups such that it fits in a signed
``5n``-bit integer.

Pure numpy; no torch import, so clients can decode without the server's dependencies.
"""

from __future__ import annotations

import numpy as np

#: A run length is a 32-bit unsigned int in pycocotools; a delta of two of them needs
#: 33 signed bits, so at most 7 groups of 5 bits.
MAX_GROUPS = 7
_OFFSET = 48
_CONTINUE = 0x20


def _groups_needed(x: np.ndarray) -> np.ndarray:
    """Number of 5-bit groups (= characters) each signed value needs; int64 ``x``."""
    n = np.ones(x.shape, dtype=np.int64)
    for k in range(1, MAX_GROUPS):
        half = np.int64(1) << np.int64(5 * k - 1)
        n += (x < -half) | (x >= half)
    return n


def _deltas(counts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``x`` per run: the count itself for the first three runs of a mask, else c[i]-c[i-2]."""
    total = counts.shape[0]
    starts = np.cumsum(lengths) - lengths
    index_in_mask = np.arange(total, dtype=np.int64) - np.repeat(starts, lengths)
    x = counts.copy()
    late = np.flatnonzero(index_in_mask > 2)
    x[late] -= counts[late - 2]
    return x


def compress_counts(counts_concat: np.ndarray, lengths: np.ndarray) -> list[bytes]:
    """Compress the run lengths of many masks at once into pycocotools' strings.

    Args:
        counts_concat: every mask's uncompressed COCO run lengths, concatenated in mask
            order (each mask starts with a zero-run, possibly of length 0).
        lengths: number of runs of each mask; ``lengths.sum() == len(counts_concat)``.

    Returns:
        One ``bytes`` per mask, byte-identical to ``pycocotools.mask.encode(...)["counts"]``.
    """
    counts = np.asarray(counts_concat, dtype=np.int64).ravel()
    lengths = np.asarray(lengths, dtype=np.int64).ravel()
    if int(lengths.sum()) != counts.shape[0]:
        raise ValueError("lengths must sum to the number of counts")
    if lengths.shape[0] == 0:
        return []
    x = _deltas(counts, lengths)
    n = _groups_needed(x)
    width = int(n.max()) if n.shape[0] else 1
    shifts = np.arange(width, dtype=np.int64) * 5
    groups = (x[:, None] >> shifts[None, :]) & 0x1F
    more = np.arange(width)[None, :] < (n[:, None] - 1)
    chars = (groups + _OFFSET + _CONTINUE * more).astype(np.uint8)
    blob = chars[np.arange(width)[None, :] < n[:, None]].tobytes()
    run_ends = np.cumsum(lengths)
    chars_per_mask = np.zeros(lengths.shape[0], dtype=np.int64)
    nonempty = lengths > 0
    chars_per_mask[nonempty] = np.add.reduceat(n, (run_ends - lengths)[nonempty])
    ends = np.cumsum(chars_per_mask).tolist()
    begins = [0, *ends[:-1]]
    return [blob[b:e] for b, e in zip(begins, ends, strict=True)]


def decompress_counts(s: bytes | str) -> np.ndarray:
    """Inverse of :func:`compress_counts` for one mask: the uncompressed run lengths (int64)."""
    raw = s.encode("ascii") if isinstance(s, str) else bytes(s)
    c = np.frombuffer(raw, dtype=np.uint8).astype(np.int64) - _OFFSET
    if c.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    if c.min() < 0 or c.max() > 63:
        raise ValueError("not a COCO compressed RLE string")
    last = (c & _CONTINUE) == 0
    if not last[-1]:
        raise ValueError("truncated COCO compressed RLE string")
    value_id = np.cumsum(last) - last
    value_start = np.flatnonzero(np.r_[True, last[:-1]])
    position = np.arange(c.shape[0]) - value_start[value_id]
    x = np.zeros(value_start.shape[0], dtype=np.int64)
    for k in range(int(position.max()) + 1):
        at = position == k
        x[value_id[at]] |= (c[at] & 0x1F) << (5 * k)
    ngroups = np.diff(np.r_[value_start, c.shape[0]])
    negative = (c[last] & 0x10) != 0
    x[negative] |= np.int64(-1) << (5 * ngroups[negative])
    counts = x.copy()
    counts[1::2] = np.cumsum(x[1::2])
    counts[2::2] = np.cumsum(x[2::2])
    return counts
