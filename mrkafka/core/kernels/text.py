"""Lines: a piece of a file cut into lines, and a text part's ``key<TAB>value`` lines."""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from mrkafka.core.kernels.arrays import binary_array, binary_parts

__all__ = ["split_lines", "text_lines"]


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
    return binary_array(*_split_lines(np.frombuffer(piece, np.uint8)))


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
