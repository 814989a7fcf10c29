"""Compiled loops of the vectorized path, over the buffers of Arrow binary arrays.

numba compiles each loop to machine code at its first use; ``cache=True`` keeps that code on
disk (beside this module, or in numba's cache directory where this one is read-only), so
later processes load it in milliseconds. Every loop takes keys of any length, with no Python
per key, and takes and gives Arrow and numpy arrays:

- ``count_words(lines)``: the distinct words of some lines, as ``bytes.split()`` cuts them,
  with the number of times each occurs: split, hash and count in one pass over the bytes;
- ``group_sum(keys, values)``: one row per distinct key with the int64 sum of its values,
  and its murmur2; ``None`` where a sum would leave int64 (nothing wraps);
- ``murmur2(keys)``: Kafka's murmur2 of every key;
- ``split_lines(piece)``: the lines of a piece of a file, without their line endings;
- ``sort_indices(keys)``: the order of keys by their bytes;
- ``text_lines(keys, texts)``: the lines of a text part;
- ``code_points``, ``code_point_order`` and ``trie``: what a part's lookup index is built of.

Grouping is open addressing with linear probing (see ``_group``); it gives keys in the
order of its table, the same for the same input.
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

__all__ = [
    "binary_parts",
    "code_point_order",
    "code_points",
    "count_words",
    "group_sum",
    "murmur2",
    "sort_indices",
    "split_lines",
    "text_lines",
    "trie",
]

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
_INT64_MAX = np.iinfo(np.int64).max
_INT64_MIN = np.iinfo(np.int64).min


def binary_parts(keys: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (int32 or int64, one more than values) and data bytes of a binary-like Arrow
    array, without copying."""
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    if pa.types.is_string(keys.type):
        keys = keys.view(pa.binary())
    elif pa.types.is_large_string(keys.type):
        keys = keys.view(pa.large_binary())
    if keys.null_count:
        raise ValueError("keys must not be null")
    offset_type = np.int64 if pa.types.is_large_binary(keys.type) else np.int32
    _, offsets_buf, data_buf = keys.buffers()
    if offsets_buf is None:  # an empty array may come without buffers
        return np.zeros(1, np.int64), np.zeros(0, np.uint8)
    offsets = np.frombuffer(offsets_buf, dtype=offset_type)[keys.offset : keys.offset + len(keys) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    return offsets, data


@numba.njit(inline="always")
def _murmur2(data, start, length):
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
        out[i] = _murmur2(data, offsets[i], offsets[i + 1] - offsets[i])
    return out


def murmur2(keys: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """murmur2 of every value of a binary or string array, as uint32 (the hash's bits)."""
    offsets, data = binary_parts(keys)
    return _murmur2_all(offsets, data)


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


# The columns of a group table's row: murmur2 and length (0 for an empty slot), the key's
# first 8 bytes, where the key starts in the data, the sum. A probe of a key of at most 8
# bytes reads its one row and nothing else.
_HEAD, _PREFIX, _START, _SUM = 0, 1, 2, 3


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
            head = (np.int64(_murmur2(data, start, end - start)) << 32) | (end - start + 1)
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


@numba.njit(cache=True, nogil=True)
def _gather(data, starts, ends):
    """The bytes ``data[starts[i]:ends[i]]`` end to end, and their offsets."""
    n = len(starts)
    offsets = np.empty(n + 1, np.int64)
    offsets[0] = 0
    for i in range(n):
        offsets[i + 1] = offsets[i] + ends[i] - starts[i]
    out = np.empty(offsets[n], np.uint8)
    at = 0
    for i in range(n):
        for j in range(starts[i], ends[i]):
            out[at] = data[j]
            at += 1
    return offsets, out


def _binary_array(offsets: np.ndarray, data: np.ndarray) -> pa.Array:
    large = offsets[-1] >= 2**31
    offsets = offsets if large else offsets.astype(np.int32)
    kind = pa.large_binary() if large else pa.binary()
    return pa.Array.from_buffers(kind, len(offsets) - 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


_NO_VALUES = np.zeros(0, np.int64)


def count_words(lines: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray, int]:
    """The distinct words of ``lines`` (runs of bytes other than ASCII whitespace, as
    ``bytes.split()`` cuts them; other bytes, UTF-8 or not, are kept), the number of times
    each occurs, and the number of words read."""
    offsets, data = binary_parts(lines)
    starts, ends, counts, _, words, _ = _group(data, offsets, _NO_VALUES, True)
    return _binary_array(*_gather(data, starts, ends)), counts, words


def group_sum(keys: pa.Array | pa.ChunkedArray, values: np.ndarray) -> tuple[pa.Array, np.ndarray, np.ndarray] | None:
    """The distinct keys, the int64 sum of each one's values and each one's murmur2; ``None``
    if a sum would not fit in int64 (nothing wraps)."""
    offsets, data = binary_parts(keys)
    values = np.ascontiguousarray(values, np.int64)
    starts, ends, sums, hashes, _, overflow = _group(data, offsets, values, False)
    if overflow:
        return None
    return _binary_array(*_gather(data, starts, ends)), sums, hashes


@numba.njit(cache=True, nogil=True)
def _split_lines(data):
    """The lines of ``data`` end to end without their line endings (``\\n``, or ``\\r\\n``; a
    last line may have none), and their offsets."""
    n = len(data)
    lines = 0
    for i in range(n):
        if data[i] == 10:
            lines += 1
    if n and data[n - 1] != 10:
        lines += 1
    offsets = np.empty(lines + 1, np.int64)
    out = np.empty(n, np.uint8)
    offsets[0] = 0
    at = 0
    line = 0
    start = 0
    for i in range(n + 1):
        if i < n and data[i] != 10:
            continue
        if i == n and start == n:
            break
        end = i - 1 if i > start and data[i - 1] == 13 else i
        out[at : at + end - start] = data[start:end]
        at += end - start
        line += 1
        offsets[line] = at
        start = i + 1
    return offsets, out[:at]


def split_lines(piece: bytes | bytearray | memoryview) -> pa.Array:
    """The lines of ``piece`` as a binary array, each without its ``\\n`` and one ``\\r`` before
    it (or at the piece's end), as ``mrkafka.io.splits.iter_lines`` reads them."""
    return _binary_array(*_split_lines(np.frombuffer(piece, np.uint8)))


@numba.njit(cache=True, nogil=True)
def _code_points(offsets, data):
    """The code points of each row of UTF-8 ``data``, as Python's ``decode("utf-8",
    "surrogateescape")`` gives them: a byte that starts no valid sequence (overlong forms,
    surrogates and code points past U+10FFFF are not valid) is U+DC00 plus the byte."""
    n = len(offsets) - 1
    out = np.empty(offsets[n] - offsets[0], np.uint32)
    starts = np.empty(n + 1, np.int64)
    k = 0
    for row in range(n):
        starts[row] = k
        j = offsets[row]
        end = offsets[row + 1]
        while j < end:
            b = np.uint32(data[j])
            if b < 0x80:
                out[k] = b
                k += 1
                j += 1
                continue
            need = 0
            low, high = 0x80, 0xBF  # what the second byte may be
            if 0xC2 <= b <= 0xDF:
                need, cp = 1, b & 0x1F
            elif 0xE0 <= b <= 0xEF:
                need, cp = 2, b & 0x0F
                low = 0xA0 if b == 0xE0 else 0x80
                high = 0x9F if b == 0xED else 0xBF
            elif 0xF0 <= b <= 0xF4:
                need, cp = 3, b & 0x07
                low = 0x90 if b == 0xF0 else 0x80
                high = 0x8F if b == 0xF4 else 0xBF
            else:
                cp = 0
            valid = need > 0 and j + need < end and low <= data[j + 1] <= high
            if valid:
                for t in range(1, need + 1):
                    c = np.uint32(data[j + t])
                    if t > 1 and not 0x80 <= c <= 0xBF:
                        valid = False
                        break
                    cp = (cp << 6) | (c & 0x3F)
            if valid:
                out[k] = cp
                j += need + 1
            else:
                out[k] = 0xDC00 + b
                j += 1
            k += 1
    starts[n] = k
    return out[:k], starts


def code_points(keys: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """The code points of every key (UTF-8, surrogate escapes for other bytes), end to end,
    and each key's offsets in them."""
    offsets, data = binary_parts(keys)
    return _code_points(offsets, data)


@numba.njit(cache=True, nogil=True)
def trie(points, offsets, order):
    """The trie of the keys ``order`` lists (distinct, sorted by code points; key ``i`` is
    ``points[offsets[i]:offsets[i + 1]]``). Node 0 is the root; the others are the keys'
    prefixes in depth-first order, which sorted keys give directly: each key adds the nodes of
    its prefixes longer than what it shares with the key before it.

    Returns each node's character and key (the row in ``order`` of the key that ends there,
    else -1), then each node's children in character order: ``children[child_start[v]:
    child_end[v]]``."""
    nodes = 1 + (offsets[-1] - offsets[0])
    char = np.zeros(nodes, np.uint32)
    parent = np.zeros(nodes, np.int64)
    key_id = np.full(nodes, -1, np.int32)
    longest = 0
    for i in range(len(offsets) - 1):
        longest = max(longest, offsets[i + 1] - offsets[i])
    path = np.zeros(longest + 1, np.int64)  # the nodes of the previous key, by depth
    m = 0
    previous, previous_length = 0, 0
    for i in range(len(order)):
        start = offsets[order[i]]
        length = offsets[order[i] + 1] - start
        shared = 0
        if i:
            limit = min(length, previous_length)
            while shared < limit and points[start + shared] == points[previous + shared]:
                shared += 1
        for depth in range(shared, length):
            m += 1
            char[m] = points[start + depth]
            parent[m] = path[depth]
            path[depth + 1] = m
        key_id[path[length]] = i
        previous, previous_length = start, length
    m += 1  # nodes, the root included
    child_start = np.zeros(m + 1, np.int64)  # counting sort of nodes 1.. by parent, stable
    for v in range(1, m):
        child_start[parent[v] + 1] += 1
    for v in range(m):
        child_start[v + 1] += child_start[v]
    children = np.zeros(m, np.int32)  # one spare slot, as the readers have it
    filled = child_start[:m].copy()
    for v in range(1, m):
        children[filled[parent[v]]] = v
        filled[parent[v]] += 1
    return char[:m], key_id[:m], children, child_start[:m].astype(np.int32), child_start[1:].astype(np.int32)


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
    return _sort_bytes(*binary_parts(keys))


def _sort_bytes(offsets: np.ndarray, data: np.ndarray) -> np.ndarray:
    prefixes = _prefixes(data, offsets)
    return _sort_ties(np.argsort(prefixes, kind="stable"), prefixes, data, offsets)


@numba.njit(cache=True, nogil=True)
def _utf8(points, offsets):
    """Code points encoded as UTF-8, surrogates too (as Python's "surrogatepass" does): bytes
    whose order is the code points' order."""
    n = len(offsets) - 1
    out = np.empty(4 * (offsets[n] - offsets[0]), np.uint8)
    out_offsets = np.empty(n + 1, np.int64)
    out_offsets[0] = 0
    k = 0
    for row in range(n):
        for i in range(offsets[row], offsets[row + 1]):
            cp = points[i]
            if cp < 0x80:
                out[k] = cp
                k += 1
            elif cp < 0x800:
                out[k] = 0xC0 | (cp >> 6)
                out[k + 1] = 0x80 | (cp & 0x3F)
                k += 2
            elif cp < 0x10000:
                out[k] = 0xE0 | (cp >> 12)
                out[k + 1] = 0x80 | ((cp >> 6) & 0x3F)
                out[k + 2] = 0x80 | (cp & 0x3F)
                k += 3
            else:
                out[k] = 0xF0 | (cp >> 18)
                out[k + 1] = 0x80 | ((cp >> 12) & 0x3F)
                out[k + 2] = 0x80 | ((cp >> 6) & 0x3F)
                out[k + 3] = 0x80 | (cp & 0x3F)
                k += 4
        out_offsets[row + 1] = k
    return out[:k], out_offsets


def code_point_order(points: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The order of keys given as code points (see ``code_points``) sorted by code points."""
    data, data_offsets = _utf8(points, offsets)
    return _sort_bytes(data_offsets, data)


@numba.njit(cache=True, nogil=True)
def _text_lines(key_offsets, keys, text_offsets, texts):
    n = len(key_offsets) - 1
    size = (key_offsets[n] - key_offsets[0]) + (text_offsets[n] - text_offsets[0]) + 2 * n
    out = np.empty(size, np.uint8)
    k = 0
    for row in range(n):
        for i in range(key_offsets[row], key_offsets[row + 1]):
            out[k] = keys[i]
            k += 1
        out[k] = 9
        k += 1
        for i in range(text_offsets[row], text_offsets[row + 1]):
            out[k] = texts[i]
            k += 1
        out[k] = 10
        k += 1
    return out


def text_lines(keys: pa.Array | pa.ChunkedArray, texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """``key<TAB>text<LF>`` for every row, end to end: the lines of a text part."""
    return _text_lines(*binary_parts(keys), *binary_parts(texts))
