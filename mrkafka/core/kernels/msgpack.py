"""msgpack's encoding of int64 values, a column at a time: the bytes ``msgpack.packb`` gives
each of them (``mrkafka.core.values.encode`` for an int), without Python per value.

msgpack writes an int in its shortest form: 0 to 127 and -32 to -1 in one byte (fixints),
others as uint 8/16/32/64 (``0xcc``-``0xcf``) if not negative, else int 8/16/32/64
(``0xd0``-``0xd3``), big-endian.
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from mrkafka.core.kernels.arrays import binary_array

__all__ = ["pack_ints"]


@numba.njit(inline="always")
def _form(v):
    """The type byte and payload length of ``v`` (type byte -1: a fixint, the byte itself)."""
    if 0 <= v <= 127 or -32 <= v < 0:
        return -1, 0
    if v > 0:
        if v <= 0xFF:
            return 0xCC, 1
        if v <= 0xFFFF:
            return 0xCD, 2
        if v <= 0xFFFFFFFF:
            return 0xCE, 4
        return 0xCF, 8
    if v >= -128:
        return 0xD0, 1
    if v >= -32768:
        return 0xD1, 2
    if v >= -2147483648:
        return 0xD2, 4
    return 0xD3, 8


@numba.njit(cache=True, nogil=True)
def _pack(values):
    n = len(values)
    offsets = np.empty(n + 1, np.int64)
    offsets[0] = 0
    for i in range(n):
        _, size = _form(values[i])
        offsets[i + 1] = offsets[i] + 1 + size
    out = np.empty(offsets[n], np.uint8)
    for i in range(n):
        v = values[i]
        at = offsets[i]
        code, size = _form(v)
        if code < 0:
            out[at] = np.uint8(v & 0xFF)
            continue
        out[at] = code
        bits = np.uint64(v)
        for j in range(size):
            out[at + size - j] = np.uint8((bits >> np.uint64(8 * j)) & np.uint64(0xFF))
    return offsets, out


def pack_ints(values: np.ndarray) -> pa.Array:
    """The msgpack encoding of each int64 value, as a binary array."""
    return binary_array(*_pack(np.ascontiguousarray(values, np.int64)))
