"""msgpack's encoding of int64 values, a column at a time: the bytes ``msgpack.packb`` gives
each of them (``mrkafka.core.values.encode`` for an int), and back, without Python per value.

msgpack writes an int in its shortest form: 0 to 127 and -32 to -1 in one byte (fixints),
others as uint 8/16/32/64 (``0xcc``-``0xcf``) if not negative, else int 8/16/32/64
(``0xd0``-``0xd3``), big-endian.
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from mrkafka.core.kernels.arrays import binary_array, binary_parts

__all__ = ["pack_ints", "unpack_ints"]


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


@numba.njit(cache=True, nogil=True)
def _unpack(offsets, data):
    n = len(offsets) - 1
    values = np.zeros(n, np.int64)
    ok = np.zeros(n, np.bool_)
    for i in range(n):
        at, end = offsets[i], offsets[i + 1]
        if at >= end:
            continue
        code = np.int64(data[at])
        if code <= 0x7F or code >= 0xE0:  # a fixint: the byte itself
            values[i] = code if code <= 0x7F else code - 256
            ok[i] = end - at == 1
            continue
        if 0xCC <= code <= 0xCF:
            size, signed = 1 << (code - 0xCC), False
        elif 0xD0 <= code <= 0xD3:
            size, signed = 1 << (code - 0xD0), True
        else:
            continue
        if end - at != 1 + size:
            continue
        bits = np.uint64(0)
        for j in range(size):
            bits = (bits << np.uint64(8)) | np.uint64(data[at + 1 + j])
        if signed and size < 8 and bits >> np.uint64(8 * size - 1):  # negative: extend the sign
            bits |= ~np.uint64(0) << np.uint64(8 * size)
        if not signed and size == 8 and bits >> np.uint64(63):  # a uint 64 beyond int64
            continue
        values[i] = np.int64(bits)
        ok[i] = True
    return values, ok


def unpack_ints(encoded: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The int64 each msgpack encoding holds, and whether it holds exactly one int64 (where
    not, a null, another type, an int beyond int64 or bytes left over, its value is 0)."""
    if encoded.null_count:
        values, ok = unpack_ints(encoded.fill_null(b""))
        return values, ok & np.asarray(encoded.is_valid())
    return _unpack(*binary_parts(encoded))
