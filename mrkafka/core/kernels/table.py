"""A hash table of key bytes that outlives a call: keys get row numbers, in the order they came.

``KeyTable`` is what a columnar state holds its keys in: the keys end to end in one byte
arena (with their offsets), each key's murmur2, and a power-of-two slot array at most half
full (open addressing, linear probing) from a key's hash to its row. Columns of the same
length (values, flags) live beside it, indexed by row; nothing is ever removed, so a row's
number stays its key's. About 20 bytes per key beyond the key's own: 10 M keys of 12 bytes
take some 400 MB where a dict of Python bytes and ints takes 2.8 GB.

``fold`` merges the values of rows that share a group, in row order, for the built-in
aggregates: a compiled loop where the per-record path would call Python per value.
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from mrkafka.core.kernels.arrays import binary_array, binary_parts
from mrkafka.core.kernels.hash import murmur2_at

__all__ = ["FOLDS", "KeyTable", "fold"]

_EMPTY = -1
#: The built-in aggregates ``fold`` computes, by their number there.
FOLDS = {"sum": 0, "count": 0, "min": 1, "max": 2, "last": 3}
_INT64_MAX = np.iinfo(np.int64).max
_INT64_MIN = np.iinfo(np.int64).min


@numba.njit(inline="always")
def _same(arena, start, length, data, at):
    i = 0
    while i < length and arena[start + i] == data[at + i]:
        i += 1
    return i == length


@numba.njit(cache=True)
def _rows(slots, hashes, starts, arena, rows, data, offsets, add):
    """The row of each key ``data[offsets[i]:offsets[i + 1]]`` (-1 for one absent, unless
    ``add``); with ``add``, absent keys are appended, as new rows, to ``arena`` (from
    ``starts[rows]``) and the slots. The caller makes room: ``slots`` at least twice the rows
    after, ``starts``/``hashes`` long enough and ``arena`` big enough for every key given.
    Returns the rows and the number of rows after."""
    mask = len(slots) - 1
    out = np.empty(len(offsets) - 1, np.int64)
    for i in range(len(offsets) - 1):
        at = offsets[i]
        length = offsets[i + 1] - at
        h = murmur2_at(data, at, length)
        slot = np.int64(h) & mask
        found = _EMPTY
        while slots[slot] != _EMPTY:
            row = slots[slot]
            start = starts[row]
            if hashes[row] == h and starts[row + 1] - start == length and _same(arena, start, length, data, at):
                found = row
                break
            slot = (slot + 1) & mask
        if found == _EMPTY and add:
            found = rows
            start = starts[rows]
            for j in range(length):
                arena[start + j] = data[at + j]
            starts[rows + 1] = start + length
            hashes[rows] = h
            slots[slot] = rows
            rows += 1
        out[i] = found
    return out, rows


@numba.njit(cache=True)
def _reslot(hashes, rows, size):
    slots = np.full(size, _EMPTY, np.int64)
    mask = size - 1
    for row in range(rows):
        slot = np.int64(hashes[row]) & mask
        while slots[slot] != _EMPTY:
            slot = (slot + 1) & mask
        slots[slot] = row
    return slots


def _grown(array: np.ndarray, size: int) -> np.ndarray:
    """``array`` in a buffer of at least ``size`` items (doubling), its items kept."""
    if size <= len(array):
        return array
    out = np.empty(max(size, 2 * len(array)), array.dtype)
    out[: len(array)] = array
    return out


class KeyTable:
    """Key bytes -> row (see the module docstring). Not safe for two threads that change it at
    once; a reader in another thread sees whole rows (the loops hold the GIL)."""

    def __init__(self) -> None:
        self.rows = 0
        self._slots = np.full(1 << 10, _EMPTY, np.int64)
        self._hashes = np.zeros(1 << 9, np.uint32)
        self._starts = np.zeros((1 << 9) + 1, np.int64)
        self._arena = np.zeros(1 << 12, np.uint8)

    def __len__(self) -> int:
        return self.rows

    def find(self, keys: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """The row of each key, -1 where the table lacks it."""
        offsets, data = binary_parts(keys)
        found, _ = _rows(self._slots, self._hashes, self._starts, self._arena, self.rows, data, offsets, False)
        return found

    def add(self, keys: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """The row of each key, a key the table lacks made the next row (repeats allowed)."""
        offsets, data = binary_parts(keys)
        n = len(offsets) - 1
        most = self.rows + n
        if 2 * most > len(self._slots):
            size = len(self._slots)
            while 2 * most > size:
                size *= 2
            self._slots = _reslot(self._hashes, self.rows, size)
        self._hashes = _grown(self._hashes, most)
        self._starts = _grown(self._starts, most + 1)
        self._arena = _grown(self._arena, int(self._starts[self.rows]) + int(offsets[-1] - offsets[0]))
        found, self.rows = _rows(self._slots, self._hashes, self._starts, self._arena, self.rows, data, offsets, True)
        return found

    def keys(self, rows: int | None = None) -> pa.Array:
        """The keys of the first ``rows`` rows (all), by row, as a binary array (a copy: the
        table may grow after)."""
        starts = self._starts[: (self.rows if rows is None else rows) + 1].copy()
        return binary_array(starts, self._arena[: starts[-1]].copy())

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self._slots, self._hashes, self._starts, self._arena))


@numba.njit(cache=True)
def fold(groups, values, n, op):
    """The values of each of ``n`` groups (``groups[i]``: row i's) merged in row order by
    aggregate ``op`` (``FOLDS``), and whether each group had a value; ``overflow`` where a sum
    would leave int64 (nothing wraps: the caller takes another path)."""
    out = np.zeros(n, np.int64)
    seen = np.zeros(n, np.bool_)
    for i in range(len(groups)):
        g = groups[i]
        v = values[i]
        if not seen[g]:
            out[g] = v
            seen[g] = True
        elif op == 0:
            a = out[g]
            if (v > 0 and a > _INT64_MAX - v) or (v < 0 and a < _INT64_MIN - v):
                return out, seen, True
            out[g] = a + v
        elif op == 1:
            out[g] = min(out[g], v)
        elif op == 2:
            out[g] = max(out[g], v)
        else:
            out[g] = v
    return out, seen, False
