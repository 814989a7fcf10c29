"""What a part's lookup index is built of: keys as code points, their order, and their trie."""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from mrkafka.core.kernels.arrays import binary_parts
from mrkafka.core.kernels.sort import sort_bytes

__all__ = ["code_point_order", "code_points", "trie"]


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
    return sort_bytes(data_offsets, data)
