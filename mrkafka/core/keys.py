"""The key contract: which bytes a key has where, and which bytes the partitioner hashes.

A job's key is a ``str``, ``bytes`` or an ``int`` (its *kind*). It has two byte forms:

- its **key bytes**, which partials, state stores and part files hold and sort by: the UTF-8
  (surrogateescape, so any bytes survive) of a str, a bytes key as it is, the decimal text
  of an int;
- its **topic bytes**, which the key of a Kafka record holds: the same, except that an int
  is an 8-byte big-endian long, as Kafka's ``LongSerializer`` writes it.

The partitioner always hashes the topic bytes, in both engines: batch reducer K,
repartition partition K, changelog partition K and output partition K hold the same keys,
and Kafka's own producer puts every key where mrkafka does.
"""

from __future__ import annotations

import re
import struct
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mrkafka.core.partition import partition_for
from mrkafka.core.serdes import LONG

__all__ = [
    "KEY_KINDS",
    "from_key_bytes",
    "from_topic_bytes",
    "key_bytes",
    "kind_of",
    "owners",
    "partition_keys",
    "split_batches",
    "split_by_partition",
    "topic_bytes",
    "topic_bytes_array",
]


#: The kinds a job's keys may be of.
KEY_KINDS = ("str", "bytes", "int")


def kind_of(key: Any) -> str:
    """``str``, ``bytes`` or ``int``; any other key is a ``TypeError``."""
    if isinstance(key, str):
        return "str"
    if isinstance(key, bytes):
        return "bytes"
    if isinstance(key, int) and not isinstance(key, bool):
        return "int"
    raise TypeError(f"keys must be str, bytes or int, not {type(key).__name__}: {key!r}")


def key_bytes(key: Any) -> bytes:
    """The key bytes of a key (see the module docstring)."""
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode("utf-8", "surrogateescape")
    kind_of(key)  # raises for what is not a key
    return str(key).encode()


def from_key_bytes(data: bytes, kind: str) -> Any:
    """The key whose key bytes are ``data``."""
    if kind == "str":
        return data.decode("utf-8", "surrogateescape")
    if kind == "int":
        return int(data)
    return data


def topic_bytes(key: Any) -> bytes | None:
    """The bytes of a key on a topic; ``None`` stays ``None`` (a record without a key)."""
    if key is None:
        return None
    if isinstance(key, int) and not isinstance(key, bool):
        try:
            return LONG.pack(key)
        except struct.error:
            raise TypeError(f"an int key must fit in a Kafka long (64 bits), got {key}") from None
    return key_bytes(key)


def from_topic_bytes(data: bytes, kind: str) -> Any:
    """The key whose topic bytes are ``data``."""
    if kind == "int":
        return LONG.unpack(data)[0]
    return from_key_bytes(data, kind)


def topic_bytes_array(keys: pa.Array | pa.ChunkedArray, kind: str) -> pa.Array:
    """The topic bytes of a column of key bytes, as a binary array (no copy unless ``int``)."""
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    if kind != "int":
        return keys
    longs = np.asarray(pc.cast(keys.cast(pa.string()), pa.int64()), dtype=">i8")
    offsets = np.arange(0, 8 * len(longs) + 1, 8, dtype=np.int32)
    return pa.Array.from_buffers(pa.binary(), len(longs), [None, pa.py_buffer(offsets), pa.py_buffer(longs.tobytes())])


def partition_keys(keys: pa.Array | pa.ChunkedArray, kind: str, num_partitions: int) -> np.ndarray:
    """The partition of each key (given as key bytes) among ``num_partitions``, as Kafka's producer picks it."""
    return partition_for(topic_bytes_array(keys, kind), num_partitions)


def split_by_partition(table: pa.Table, num_partitions: int, kind: str) -> list[pa.Table]:
    """The rows of a table with a ``key`` column of key bytes, for each partition in order,
    rows keeping their order."""
    return split_batches(table.to_batches(), table.schema, num_partitions, kind)


def split_batches(batches: list[pa.RecordBatch], schema: pa.Schema, num_partitions: int, kind: str) -> list[pa.Table]:
    """``split_by_partition`` of a table's batches, a batch at a time, each taken off the list
    once split: when the list held the only reference, a task holds a batch twice, not the table."""
    if num_partitions == 1:
        whole = pa.Table.from_batches(batches, schema)
        batches.clear()
        return [whole]
    parts: list[list[pa.RecordBatch]] = [[] for _ in range(num_partitions)]
    batches.reverse()
    while batches:
        batch = batches.pop()
        placed = partition_keys(batch.column("key"), kind, num_partitions)
        ordered = batch.take(pa.array(np.argsort(placed, kind="stable")))
        bounds = np.concatenate([[0], np.cumsum(np.bincount(placed, minlength=num_partitions))])
        for k in range(num_partitions):
            parts[k].append(ordered.slice(bounds[k], bounds[k + 1] - bounds[k]))
    return [pa.Table.from_batches(part, schema) for part in parts]


def owners(text: str, partitions: int) -> list[int]:
    """The partitions that may hold a key typed as ``text``: murmur2's for it as a str key, and
    as an int key where it is a decimal number (a look-up knows the text, not the kind)."""
    data = pa.array([text.encode("utf-8", "surrogateescape")], pa.binary())
    kinds = ["str", "int"] if re.fullmatch(r"-?[0-9]+", text) and -(2**63) <= int(text) < 2**63 else ["str"]
    return sorted({int(partition_keys(data, kind, partitions)[0]) for kind in kinds})
