"""Arrow binary arrays as numpy views of their buffers, and back: what every kernel takes and gives."""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

__all__ = ["binary_parts", "binary_array", "gather"]


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


@numba.njit(cache=True, nogil=True)
def gather(data, starts, ends):
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


def binary_array(offsets: np.ndarray, data: np.ndarray) -> pa.Array:
    large = offsets[-1] >= 2**31
    offsets = offsets if large else offsets.astype(np.int32)
    kind = pa.large_binary() if large else pa.binary()
    return pa.Array.from_buffers(kind, len(offsets) - 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
