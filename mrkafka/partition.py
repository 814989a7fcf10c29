"""Kafka's default partitioner: ``(murmur2(key_bytes) & 0x7fffffff) % R``.

Both engines place keys with it (``mrkafka.keys`` says which bytes of a key it hashes), so
batch reducer K holds exactly the keys Kafka's own producer would put in partition K of an
R-partition topic. Python's ``hash()`` is salted
per process and would break that; murmur2 is what Kafka's ``BuiltInPartitioner`` uses.
``partition_for`` hashes a whole Arrow array at once with numpy, four key bytes per step.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = ["murmur2", "murmur2_array", "partition_for", "to_positive"]

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK32 = 0xFFFFFFFF
# Keys longer than this are hashed one at a time: the vectorized loop takes one numpy step
# per 4 bytes of the longest key, which a single huge key would make slow.
_VECTOR_MAX_LEN = 1024


def _signed(h: int) -> int:
    return h - (1 << 32) if h & 0x80000000 else h


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2``: the 32-bit hash as a signed Java int."""
    length = len(data)
    h = (_SEED ^ length) & _MASK32
    n4 = length // 4
    if n4:
        ks = np.frombuffer(data, dtype="<u4", count=n4).astype(np.uint64)
        ks = (ks * _M) & _MASK32
        ks ^= ks >> 24
        ks = (ks * _M) & _MASK32
        for k in ks.tolist():
            h = ((h * _M) & _MASK32) ^ k
    tail = data[n4 * 4 :]
    if tail:
        for i in range(len(tail) - 1, -1, -1):
            h ^= tail[i] << (8 * i)
        h = (h * _M) & _MASK32
    h ^= h >> 13
    h = (h * _M) & _MASK32
    h ^= h >> 15
    return _signed(h)


def to_positive(h: int) -> int:
    """Kafka's ``Utils.toPositive``."""
    return h & 0x7FFFFFFF


def _binary_parts(keys: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Offsets and data bytes of a binary-like Arrow array, without copying the data."""
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
    offsets = np.frombuffer(offsets_buf, dtype=offset_type)[keys.offset : keys.offset + len(keys) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    return offsets.astype(np.int64), data


def murmur2_array(keys: pa.Array) -> np.ndarray:
    """murmur2 of every value of a binary or string array, as uint32 (the hash's bits)."""
    offsets, data = _binary_parts(keys)
    starts = offsets[:-1]
    lengths = offsets[1:] - starts
    n = len(lengths)
    h = (np.uint32(_SEED) ^ lengths.astype(np.uint32)).astype(np.uint32)
    m = np.uint32(_M)
    # Pad so that reading 4 bytes past any key's start never leaves the buffer.
    padded = np.concatenate([data, np.zeros(4, np.uint8)])
    short = lengths <= _VECTOR_MAX_LEN
    n4 = np.where(short, lengths // 4, 0)
    # Keys ordered by their number of 4-byte words, longest first: step i touches a prefix.
    order = np.argsort(-n4, kind="stable")
    active_counts = np.bincount(n4, minlength=_VECTOR_MAX_LEN // 4 + 1)[::-1].cumsum()[::-1]
    with np.errstate(over="ignore"):
        for i in range(int(n4.max()) if n else 0):
            idx = order[: active_counts[i + 1]]
            pos = starts[idx] + 4 * i
            k = (
                padded[pos].astype(np.uint32)
                | (padded[pos + 1].astype(np.uint32) << 8)
                | (padded[pos + 2].astype(np.uint32) << 16)
                | (padded[pos + 3].astype(np.uint32) << 24)
            )
            k *= m
            k ^= k >> np.uint32(24)
            k *= m
            h[idx] = (h[idx] * m) ^ k
        rem = lengths % 4
        tail_start = starts + (lengths - rem)
        for j in (2, 1, 0):
            sel = short & (rem > j)
            h[sel] ^= padded[tail_start[sel] + j].astype(np.uint32) << np.uint32(8 * j)
        sel = short & (rem > 0)
        h[sel] *= m
        h ^= h >> np.uint32(13)
        h *= m
        h ^= h >> np.uint32(15)
    for i in np.flatnonzero(~short):
        h[i] = murmur2(data[starts[i] : starts[i] + lengths[i]].tobytes()) & _MASK32
    return h


def partition_for(keys: pa.Array, num_partitions: int) -> np.ndarray:
    """The partition of each key among ``num_partitions``, as Kafka's producer picks it."""
    return ((murmur2_array(keys) & np.uint32(0x7FFFFFFF)) % np.uint32(num_partitions)).astype(np.int32)
