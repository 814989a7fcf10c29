"""Keys in the order of their bytes, as Arrow's sort of a binary column orders them."""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from mrkafka.core.kernels.arrays import binary_parts

__all__ = ["sort_bytes", "sort_indices"]


@numba.njit(inline="always")
def _less(units, offsets, a, b):
    """Whether key ``a`` sorts before key ``b``: by bytes, then length."""
    i, end_a = offsets[a], offsets[a + 1]
    j, end_b = offsets[b], offsets[b + 1]
    while i < end_a and j < end_b:
        if units[i] != units[j]:
            return units[i] < units[j]
        i += 1
        j += 1
    return end_a - offsets[a] < end_b - offsets[b]


@numba.njit(cache=True, nogil=True)
def _prefixes(data, offsets):
    """Each key's first 8 bytes as one number, the first byte the highest (zeros past its end)."""
    n = len(offsets) - 1
    out = np.zeros(n, np.uint64)
    for k in range(n):
        word = np.uint64(0)
        start, end = offsets[k], offsets[k + 1]
        for i in range(8):
            word <<= np.uint64(8)
            if start + i < end:
                word |= np.uint64(data[start + i])
        out[k] = word
    return out


@numba.njit(cache=True, nogil=True)
def _sort_ties(order, prefixes, units, offsets):
    """Finish sorting ``order`` (sorted by prefix, stably): each run of equal prefixes is
    sorted by whole keys, stably (a merge sort)."""
    n = len(order)
    spare = np.empty(n, order.dtype)
    run = 0
    while run < n:
        end = run + 1
        while end < n and prefixes[order[end]] == prefixes[order[run]]:
            end += 1
        width = 1
        while width < end - run:
            for lo in range(run, end, 2 * width):
                mid = min(lo + width, end)
                hi = min(lo + 2 * width, end)
                i, j, k = lo, mid, lo
                while i < mid and j < hi:
                    if _less(units, offsets, order[j], order[i]):
                        spare[k] = order[j]
                        j += 1
                    else:
                        spare[k] = order[i]
                        i += 1
                    k += 1
                while i < mid:
                    spare[k] = order[i]
                    i += 1
                    k += 1
                while j < hi:
                    spare[k] = order[j]
                    j += 1
                    k += 1
            order[run:end] = spare[run:end]
            width *= 2
        run = end
    return order


def sort_indices(keys: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The order of binary keys sorted by their bytes, a key before the longer ones it
    starts, stable: what Arrow's ``sort_indices`` gives. Keys are ordered by their first 8
    bytes in one numeric sort; only keys that share those are compared whole."""
    return sort_bytes(*binary_parts(keys))


def sort_bytes(offsets: np.ndarray, data: np.ndarray) -> np.ndarray:
    prefixes = _prefixes(data, offsets)
    return _sort_ties(np.argsort(prefixes, kind="stable"), prefixes, data, offsets)
