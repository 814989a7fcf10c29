"""Grouping keys in one compiled pass: word count's split, hash and count, and integer sums
by key. Open addressing with linear probing (see ``_group``): keys come out in the order they
first came."""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from mrkafka.core.kernels.arrays import binary_array, binary_parts, gather
from mrkafka.core.kernels.hash import murmur2_at

__all__ = ["count_words", "group_sum"]

# A group's row: murmur2 and length (``_HEAD``), the key's first 8 bytes, where the key
# starts in the data, the sum. Rows are dense, in the order the groups first came. A slot of
# the hash table holds a group's murmur2 (high half) and its row + 1 (low half), 0 when empty:
# a probe compares hashes in the slot and reads a row only when they match, so a table at most
# half full costs 16 to 32 bytes per group beside the group's 32.
_HEAD, _PREFIX, _START, _SUM = 0, 1, 2, 3
_LOW = np.int64(0xFFFFFFFF)
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
def _insert(slots, rows, groups, data, start, end, value, head, prefix):
    """Add ``value`` to the key ``data[start:end]``'s row, or make one (``rows`` has room);
    returns the number of groups, -1 if the sum would leave int64."""
    mask = len(slots) - 1
    length = end - start
    hashed = (head >> 32) & _LOW
    slot = hashed & mask
    while True:
        taken = slots[slot]
        if taken == 0:
            slots[slot] = (hashed << 32) | (groups + 1)
            rows[groups, _HEAD] = head
            rows[groups, _PREFIX] = prefix
            rows[groups, _START] = start
            rows[groups, _SUM] = value
            return groups + 1
        if (taken >> 32) & _LOW == hashed:
            g = (taken & _LOW) - 1
            if rows[g, _HEAD] == head and rows[g, _PREFIX] == prefix:
                other = rows[g, _START]
                same = True
                for i in range(8, length):
                    if data[start + i] != data[other + i]:
                        same = False
                        break
                if same:
                    a = rows[g, _SUM]
                    if (value > 0 and a > _INT64_MAX - value) or (value < 0 and a < _INT64_MIN - value):
                        return -1
                    rows[g, _SUM] = a + value
                    return groups
        slot = (slot + 1) & mask


@numba.njit(inline="always")
def _slots_for(groups):
    """The length of a slot array at most half full with ``groups`` groups (a power of two)."""
    size = 1 << 12
    while size < 2 * groups:
        size *= 2
    return size


@numba.njit(cache=True, nogil=True)
def _group(data, offsets, values, words):
    """Group keys and sum their values. The keys are the rows of a binary array (``offsets``
    into ``data``), each with its value; or, with ``words``, the words of each row, each
    counting 1 (``values`` unused).

    Returns each group's key (start and end in ``data``, its first occurrence), sum and
    murmur2, in the order the groups first came; the number of keys read; and whether a sum
    left int64 (then nothing else is meaningful).

    Open addressing with linear probing over a power-of-two slot array at most half full,
    beside the groups' rows (see ``_HEAD``). Keys given one per row bound the groups: both
    are sized for them at once. Words are not known ahead: rows and slots double as they fill."""
    most = 1 << 12 if words else max(len(offsets) - 1, 1)
    rows = np.empty((most, 4), np.int64)
    slots = np.zeros(_slots_for(most if not words else 0), np.int64)
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
            if groups == len(rows):
                rows = _grown(rows, groups)
            head = (np.int64(murmur2_at(data, start, end - start)) << 32) | (end - start + 1)
            groups = _insert(slots, rows, groups, data, start, end, value, head, _prefix(data, start, end - start))
            if groups < 0:
                return _NO_VALUES, _NO_VALUES, _NO_VALUES, np.zeros(0, np.uint32), keys_read, True
            if 2 * groups > len(slots):
                slots = _reslotted(rows, groups, 2 * len(slots))
            if not words:
                break
            start = end + 1
    heads = rows[:groups, _HEAD]
    starts = rows[:groups, _START].copy()
    ends = starts + (heads & _LOW) - 1
    hashes = ((heads >> 32) & _LOW).astype(np.uint32)
    return starts, ends, rows[:groups, _SUM].copy(), hashes, keys_read, False


@numba.njit(inline="always")
def _grown(rows, groups):
    out = np.empty((2 * len(rows), 4), np.int64)
    out[:groups] = rows[:groups]
    return out


@numba.njit(inline="always")
def _reslotted(rows, groups, size):
    slots = np.zeros(size, np.int64)
    mask = size - 1
    for g in range(groups):
        hashed = (rows[g, _HEAD] >> 32) & _LOW
        s = hashed & mask
        while slots[s] != 0:
            s = (s + 1) & mask
        slots[s] = (hashed << 32) | (g + 1)
    return slots


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
