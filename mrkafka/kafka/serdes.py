"""Kafka's wire forms of keys and values, as Kafka's own serializers write them.

Keys follow ``mrkafka.keys`` (an int as Kafka's LongSerializer writes it). Values: an int
as an 8-byte big-endian signed long (LongSerializer), bytes unchanged, ``None`` as a
tombstone, anything else as compact JSON.
"""

from __future__ import annotations

import json
import struct
from typing import Any

__all__ = [
    "VALUE_FORMATS",
    "Serde",
    "deserialize_long",
    "format_value",
    "serialize_long",
]

_LONG = struct.Struct(">q")
VALUE_FORMATS = ("string", "long", "json", "bytes")


def serialize_long(value: int) -> bytes:
    return _LONG.pack(value)


def deserialize_long(data: bytes) -> int:
    if len(data) != 8:
        raise ValueError(f"a long is 8 bytes, got {len(data)}")
    return _LONG.unpack(data)[0]


def format_value(data: bytes | None, fmt: str) -> bytes:
    """How the console consumer prints a key or value in format ``fmt``."""
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
    """A value serde of one kind for a whole topic: ``long`` (LongSerializer) or ``json``."""

    def __init__(self, kind: str) -> None:
        if kind not in ("long", "json"):
            raise ValueError(f"value serde must be long or json, not {kind!r}")
        self.kind = kind

    def encode(self, value: Any) -> bytes | None:
        if value is None:
            return None  # a tombstone
        if self.kind == "long":
            return serialize_long(value)
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogateescape")

    def decode(self, data: bytes | None) -> Any:
        if data is None:
            return None
        if self.kind == "long":
            return deserialize_long(data)
        return json.loads(data.decode("utf-8", "surrogateescape"))
