"""Values on topics, as Kafka's own serializers write them, and how a console prints them.

A job's output values travel in its ``value_serde`` (``mrkafka.job.VALUE_SERDES``): ``long``,
an 8-byte big-endian signed long (Kafka's ``LongSerializer``), or ``json``, compact JSON
(``mrkafka.core.json``, the encoder part files use); ``None`` is a tombstone. Keys follow
``mrkafka.core.keys``, which packs an int key with the same ``LONG``.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mrkafka.core.json import to_json
from mrkafka.core.kernels.arrays import binary_array
from mrkafka.job import VALUE_SERDES

__all__ = ["LONG", "PRINT_FORMATS", "Serde", "deserialize_long", "format_value", "serialize_long"]

#: Kafka's ``LongSerializer``: a signed 64-bit integer, big-endian.
LONG = struct.Struct(">q")
#: How ``mrkafka consume`` prints a key or a value.
PRINT_FORMATS = ("string", "long", "json", "bytes")


def serialize_long(value: int) -> bytes:
    return LONG.pack(value)


def deserialize_long(data: bytes) -> int:
    if len(data) != 8:
        raise ValueError(f"a long is 8 bytes, got {len(data)}")
    return LONG.unpack(data)[0]


def format_value(data: bytes | None, fmt: str) -> bytes:
    """How the console consumer prints a key or value in format ``fmt`` (one of ``PRINT_FORMATS``)."""
    if data is None:
        return b"null"
    if fmt == "long":
        try:
            return str(deserialize_long(data)).encode()
        except ValueError:
            return b"<not a long: " + data.hex().encode() + b">"
    if fmt == "json":
        try:
            return json.dumps(json.loads(data), ensure_ascii=False).encode()
        except ValueError:
            return b"<not JSON: " + data[:64] + (b"..." if len(data) > 64 else b"") + b">"
    if fmt == "bytes":
        return repr(data).encode()
    return data


class Serde:
    """One value serde for a whole topic, by its name: ``long`` (LongSerializer) or ``json``."""

    def __init__(self, name: str) -> None:
        if name not in VALUE_SERDES:
            raise ValueError(f"value serde must be one of {', '.join(VALUE_SERDES)}, not {name!r}")
        self.name = name

    def encode(self, value: Any) -> bytes | None:
        if value is None:
            return None  # a tombstone
        if self.name == "long":
            return serialize_long(value)
        return to_json(value)

    def encode_ints(self, values: np.ndarray) -> list[bytes]:
        """``encode`` of each int64 of a column, without Python per value."""
        if self.name == "long":
            data = np.ascontiguousarray(values, ">i8").view(np.uint8)
            return binary_array(np.arange(0, len(data) + 1, 8, dtype=np.int64), data).to_pylist()
        return pc.cast(pa.array(values, pa.int64()), pa.string()).cast(pa.binary()).to_pylist()

    def decode(self, data: bytes | None) -> Any:
        if data is None:
            return None
        if self.name == "long":
            return deserialize_long(data)
        return json.loads(data.decode("utf-8", "surrogateescape"))
