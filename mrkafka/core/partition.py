"""Kafka's default partitioner: ``(murmur2(key_bytes) & 0x7fffffff) % R``.

Both engines place keys with it (``mrkafka.core.keys`` says which bytes of a key it hashes), so
batch reducer K holds exactly the keys Kafka's own producer would put in partition K of an
R-partition topic. Python's ``hash()`` is salted
per process and would break that; murmur2 is what Kafka's ``BuiltInPartitioner`` uses.
``partition_for`` hashes a whole Arrow array in one compiled loop (``mrkafka.core.kernels``);
``murmur2`` is the same hash in plain Python, for one key.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from mrkafka.core import kernels

__all__ = ["murmur2", "murmur2_array", "partition_for", "to_positive"]

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK32 = 0xFFFFFFFF


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


def murmur2_array(keys: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """murmur2 of every value of a binary or string array, as uint32 (the hash's bits)."""
    return kernels.murmur2(keys)


def partition_for(keys: pa.Array, num_partitions: int) -> np.ndarray:
    """The partition of each key among ``num_partitions``, as Kafka's producer picks it."""
    return ((murmur2_array(keys) & np.uint32(0x7FFFFFFF)) % np.uint32(num_partitions)).astype(np.int32)
