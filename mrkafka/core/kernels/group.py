"""Grouping keys in one compiled pass: word count's split, hash and count, and integer sums
by key. Open addressing with linear probing (see ``_group``): keys come out in the order of
the table, the same for the same input."""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from mrkafka.core.kernels.arrays import binary_array, binary_parts, gather
from mrkafka.core.kernels.hash import murmur2_at

__all__ = ["count_words", "group_sum"]

# The columns of a group table's row: murmur2 and length (0 for an empty slot), the key's
# first 8 bytes, where the key starts in the data, the sum. A probe of a key of at most 8
# bytes reads its one row and nothing else.
_HEAD, _PREFIX, _START, _SUM = 0, 1, 2, 3
_INT64_MAX = np.iinfo(np.int64).max
_INT64_MIN = np.iinfo(np.int64).min
_NO_VALUES = np.zeros(0, np.int64)


@numba.njit(inline="always")
def _is_space(c):
    return c == 32 or (c >= 9 and c <= 13)


@numba.njit(inline="always")
def _prefix(data, start, length):
    """The first 8 bytes of a key as one little-endian word (zeros past its end)."""
    word = np.uint64(0)
    for i in range(min(length, 8)):
        word |= np.uint64(data[start + i]) << np.uint64(8 * i)
    return np.int64(word)


@numba.njit(inline="always")
def _insert(table, groups, data, start, end, value, head, prefix):
    """Add ``value`` to the key ``data[start:end]``'s row, or make one; returns the number of
    groups, -1 if the sum would leave int64."""
    mask = len(table) - 1
    length = end - start
    slot = (head >> 32) & mask
    while True:
        if table[slot, _HEAD] == 0:
            table[slot, _HEAD] = head
            table[slot, _PREFIX] = prefix
            table[slot, _START] = start
            table[slot, _SUM] = value
            return groups + 1
        if table[slot, _HEAD] == head and table[slot, _PREFIX] == prefix:
            other = table[slot, _START]
            same = True
            for i in range(8, length):
                if data[start + i] != data[other + i]:
                    same = False
                    break
            if same:
                a = table[slot, _SUM]
                if (value > 0 and a > _INT64_MAX - value) or (value < 0 and a < _INT64_MIN - value):
                    return -1
                table[slot, _SUM] = a + value
                return groups
        slot = (slot + 1) & mask


@numba.njit(cache=True, nogil=True)
def _group(data, offsets, values, words):
    """Group keys and sum their values. The keys are the rows of a binary array (``offsets``
    into ``data``), each with its value; or, with ``words``, the words of each row, each
    counting 1 (``values`` unused).

    Returns each group's key (start and end in ``data``, its first occurrence), sum and
    murmur2; the number of keys read; and whether a sum left int64 (then nothing else is
    meaningful).

    Open addressing with linear probing over a power-of-two table (rows of four words, see
    ``_HEAD``) at most half full: when it fills, a table twice as long takes its groups."""
    table = np.zeros((1 << 12, 4), np.int64)
    groups = 0
    keys_read = 0
    for row in range(len(offsets) - 1):
        start = offsets[row]
        row_end = offsets[row + 1]
        while True:
            if words:
                while start < row_end and _is_space(data[start]):
                    start += 1
                if start >= row_end:
                    break
                end = start + 1
                while end < row_end and not _is_space(data[end]):
                    end += 1
                value = 1
            else:
                end = row_end
                value = values[row]
            keys_read += 1
            head = (np.int64(murmur2_at(data, start, end - start)) << 32) | (end - start + 1)
            groups = _insert(table, groups, data, start, end, value, head, _prefix(data, start, end - start))
            if groups < 0:
                return table[:0, 0], table[:0, 0], table[:0, 0], np.zeros(0, np.uint32), keys_read, True
            if 2 * groups > len(table):
                table = _rehashed(table, 2 * len(table))
            if not words:
                break
            start = end + 1
    used = np.flatnonzero(table[:, _HEAD])
    heads = table[used, _HEAD]
    starts = table[used, _START]
    ends = starts + (heads & 0xFFFFFFFF) - 1
    hashes = (heads >> 32).astype(np.uint32)
    return starts, ends, table[used, _SUM], hashes, keys_read, False


@numba.njit(inline="always")
def _rehashed(table, size):
    out = np.zeros((size, 4), np.int64)
    mask = size - 1
    for slot in range(len(table)):
        if table[slot, _HEAD] != 0:
            s = (table[slot, _HEAD] >> 32) & mask
            while out[s, _HEAD] != 0:
                s = (s + 1) & mask
            out[s] = table[slot]
    return out


def count_words(lines: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray, int]:
    """The distinct words of ``lines`` (runs of bytes other than ASCII whitespace, as
    ``bytes.split()`` cuts them; other bytes, UTF-8 or not, are kept), the number of times
    each occurs, and the number of words read."""
    offsets, data = binary_parts(lines)
    starts, ends, counts, _, words, _ = _group(data, offsets, _NO_VALUES, True)
    return binary_array(*gather(data, starts, ends)), counts, words


def group_sum(keys: pa.Array | pa.ChunkedArray, values: np.ndarray) -> tuple[pa.Array, np.ndarray, np.ndarray] | None:
    """The distinct keys, the int64 sum of each one's values and each one's murmur2; ``None``
    if a sum would not fit in int64 (nothing wraps)."""
    offsets, data = binary_parts(keys)
    values = np.ascontiguousarray(values, np.int64)
    starts, ends, sums, hashes, _, overflow = _group(data, offsets, values, False)
    if overflow:
        return None
    return binary_array(*gather(data, starts, ends)), sums, hashes
