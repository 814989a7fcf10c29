"""Kafka's murmur2 (``Utils.murmur2``), compiled: per key inline, or over a whole array."""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from mrkafka.core.kernels.arrays import binary_parts

__all__ = ["murmur2", "murmur2_at"]

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


@numba.njit(inline="always")
def murmur2_at(data, start, length):
    """Kafka's ``Utils.murmur2`` of ``data[start:start + length]``, as the hash's 32 bits."""
    m = np.uint64(_M)
    mask = np.uint64(_MASK)
    h = (np.uint64(_SEED) ^ np.uint64(length)) & mask
    i = start
    end4 = start + (length & ~3)
    while i < end4:
        k = (
            np.uint64(data[i])
            | (np.uint64(data[i + 1]) << np.uint64(8))
            | (np.uint64(data[i + 2]) << np.uint64(16))
            | (np.uint64(data[i + 3]) << np.uint64(24))
        )
        k = (k * m) & mask
        k ^= k >> np.uint64(24)
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
        i += 4
    rest = length & 3
    if rest == 3:
        h ^= np.uint64(data[i + 2]) << np.uint64(16)
    if rest >= 2:
        h ^= np.uint64(data[i + 1]) << np.uint64(8)
    if rest >= 1:
        h ^= np.uint64(data[i])
        h = (h * m) & mask
    h ^= h >> np.uint64(13)
    h = (h * m) & mask
    h ^= h >> np.uint64(15)
    return np.uint32(h)


@numba.njit(cache=True, nogil=True)
def _murmur2_all(offsets, data):
    n = len(offsets) - 1
    out = np.empty(n, np.uint32)
    for i in range(n):
        out[i] = murmur2_at(data, offsets[i], offsets[i + 1] - offsets[i])
    return out


def murmur2(keys: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """murmur2 of every value of a binary or string array, as uint32 (the hash's bits)."""
    offsets, data = binary_parts(keys)
    return _murmur2_all(offsets, data)
