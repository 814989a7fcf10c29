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

__all__ = ["partition_for"]


def partition_for(keys: pa.Array, num_partitions: int) -> np.ndarray:
    """The partition of each key among ``num_partitions``, as Kafka's producer picks it."""
    return ((kernels.murmur2(keys) & np.uint32(0x7FFFFFFF)) % np.uint32(num_partitions)).astype(np.int32)
