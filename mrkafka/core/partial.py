"""The partial: the table both engines move between map and reduce, and its wire format.

A *partial* is a table with a binary ``key`` column (key bytes, see ``mrkafka.core.keys``: what
the output sorts by) and a ``value`` column. Values are ``int64`` or ``float64`` when
every value is one, else Python objects encoded by ``mrkafka.core.values`` (bytes that can
only build data), so that a job's reduce sees exactly what its map produced. The schema's
metadata records whether keys were str, bytes or int. A partial travels as Arrow IPC:
through Ray's object store in batch, as records of the repartition topic in stream
(``partial_to_ipc`` cuts it by the rows' real sizes; ``partial_from_ipc`` refuses a record
that is not such a partial with ``BadPartial``, so anyone who can write to the topic can
at most make a reducer stop or skip the record).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mrkafka.core import kernels
from mrkafka.core.keys import KEY_KINDS, key_bytes, kind_of
from mrkafka.core.values import decode as decode_value
from mrkafka.core.values import encode as encode_value

__all__ = [
    "KEY",
    "VALUE",
    "BadPartial",
    "Rows",
    "as_objects",
    "concat_mixed",
    "concat_partials",
    "decode_values",
    "empty_partial",
    "holds_objects",
    "key_kind",
    "partial_from_arrow",
    "partial_from_ipc",
    "partial_from_key_bytes",
    "partial_from_pairs",
    "partial_to_ipc",
    "sort_by_key",
]

KEY = "key"
VALUE = "value"
_KEY_KIND = b"mrkafka.key"
_END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"
_VALUE_ENCODING = b"mrkafka.value"
_OBJECTS = {_VALUE_ENCODING: b"msgpack"}


class BadPartial(ValueError):
    """Bytes that are not a partial (not Arrow IPC, another schema, values not in ``mrkafka.core.values``' encoding)."""


def key_kind(table: pa.Table) -> str:
    return (table.schema.metadata or {}).get(_KEY_KIND, b"bytes").decode()


def _schema(kind: str, value_field: pa.Field) -> pa.Schema:
    return pa.schema([pa.field(KEY, pa.binary()), value_field], metadata={_KEY_KIND: kind.encode()})


def _encode_values(values: Sequence[Any]) -> tuple[pa.Array, pa.Field]:
    if values and all(type(v) is int for v in values):
        try:
            return pa.array(values, pa.int64()), pa.field(VALUE, pa.int64())
        except OverflowError:
            pass
    elif values and all(type(v) is float for v in values):
        return pa.array(values, pa.float64()), pa.field(VALUE, pa.float64())
    return pa.array([encode_value(v) for v in values], pa.binary()), pa.field(VALUE, pa.binary(), metadata=_OBJECTS)


def holds_objects(table: pa.Table) -> bool:
    """Whether the partial's values are encoded Python objects (not Arrow numbers)."""
    return table.schema.field(VALUE).metadata == _OBJECTS


def as_objects(table: pa.Table) -> pa.Table:
    """The partial with its values as encoded Python objects, whatever they were."""
    if holds_objects(table):
        return table
    values = pa.array([encode_value(v) for v in table.column(VALUE).to_pylist()], pa.binary())
    return pa.Table.from_arrays(
        [table.column(KEY), values], schema=_schema(key_kind(table), pa.field(VALUE, pa.binary(), metadata=_OBJECTS))
    )


def decode_values(table: pa.Table) -> list[Any]:
    """The partial's values as Python objects; ``UndecodableValue`` if one is not an encoded value."""
    column = table.column(VALUE).to_pylist()
    if not holds_objects(table):
        return column
    return [decode_value(v) for v in column]


def partial_from_pairs(keys: Sequence[Any], values: Sequence[Any], kind: str | None = None) -> pa.Table:
    """A partial from Python keys and values (keys of one kind: str, bytes or int)."""
    if kind is None:
        kind = kind_of(keys[0]) if keys else "bytes"
    if kind == "str":  # the common case, without a call per key (str.encode refuses a non-str)
        return partial_from_key_bytes([str.encode(k, "utf-8", "surrogateescape") for k in keys], values, kind)
    return partial_from_key_bytes([key_bytes(k) for k in keys], values, kind)


def partial_from_key_bytes(keys: Sequence[bytes], values: Sequence[Any], kind: str) -> pa.Table:
    """A partial from key bytes of keys of ``kind``, and Python values."""
    value_array, value_field = _encode_values(values)
    return pa.Table.from_arrays([pa.array(keys, pa.binary()), value_array], schema=_schema(kind, value_field))


def partial_of_ints(keys: pa.Array, values: pa.Array, kind: str) -> pa.Table:
    """A partial from a column of key bytes of keys of ``kind`` and an int64 column."""
    return pa.Table.from_arrays([keys, values], schema=_schema(kind, pa.field(VALUE, pa.int64())))


def partial_from_arrow(table: pa.Table) -> pa.Table:
    """A partial from what a vectorized map returned: ``key`` (string, binary or integer) and ``value``."""
    if KEY not in table.column_names or VALUE not in table.column_names:
        raise TypeError(f"map_arrow must return columns 'key' and 'value', got {table.column_names}")
    keys = table.column(KEY)
    if pa.types.is_integer(keys.type):
        kind, keys = "int", pc.cast(keys, pa.string()).cast(pa.binary())
    elif pa.types.is_string(keys.type) or pa.types.is_large_string(keys.type):
        kind, keys = "str", keys.cast(pa.binary())
    elif pa.types.is_binary(keys.type) or pa.types.is_large_binary(keys.type):
        kind, keys = "bytes", keys.cast(pa.binary())
    else:
        raise TypeError(f"map_arrow keys must be strings, binary or integers, not {keys.type}")
    values = table.column(VALUE)
    return pa.Table.from_arrays([keys, values], schema=_schema(kind, pa.field(VALUE, values.type)))


class Rows(NamedTuple):
    """A partial's rows as Python values: key bytes, the job's values, the key kind.

    What a reducer's last steps (finish, sort, write) work on when the values are Python
    objects, so that values are not pickled again only to be unpickled by the writer."""

    keys: list[bytes]
    values: list[Any]
    kind: str

    @classmethod
    def of(cls, table: pa.Table) -> Rows:
        return cls(table.column(KEY).to_pylist(), decode_values(table), key_kind(table))

    @property
    def num_rows(self) -> int:
        return len(self.keys)

    def sorted_by_key(self) -> Rows:
        """Ordered by key bytes, as ``pc.sort_indices`` orders a binary column."""
        order = sorted(range(len(self.keys)), key=self.keys.__getitem__)
        return Rows([self.keys[i] for i in order], [self.values[i] for i in order], self.kind)

    def table(self) -> pa.Table:
        return partial_from_key_bytes(self.keys, self.values, self.kind)


def sort_by_key(part: pa.Table | Rows) -> pa.Table | Rows:
    """Rows ordered by key bytes (stable, so rows of one key keep their order)."""
    if isinstance(part, Rows):
        return part.sorted_by_key()
    return part.take(kernels.sort_indices(part.column(KEY))) if part.num_rows else part


def empty_partial() -> pa.Table:
    return pa.Table.from_arrays(
        [pa.array([], pa.binary()), pa.array([], pa.int64())],
        schema=_schema("bytes", pa.field(VALUE, pa.int64())),
    )


def concat_partials(tables: Iterable[pa.Table]) -> pa.Table:
    tables = list(tables)
    first = tables[0]
    return pa.concat_tables([t.cast(first.schema) if t.schema != first.schema else t for t in tables])


def concat_mixed(tables: Sequence[pa.Table]) -> pa.Table:
    """``concat_partials`` of partials whose values may differ in type (ints in one, floats or
    Python values in another): then all as Python values, nothing cast."""
    if any(table.schema != tables[0].schema for table in tables):
        tables = [as_objects(table) for table in tables]
    return concat_partials(tables)


def _row_bytes(table: pa.Table) -> np.ndarray:
    """The bytes each row of a partial takes in Arrow IPC: its key and value data, and offsets."""
    sizes = np.asarray(pc.binary_length(table.column(KEY)), dtype=np.int64) + 4
    values = table.column(VALUE)
    if pa.types.is_binary(values.type) or pa.types.is_string(values.type):
        return sizes + np.asarray(pc.binary_length(values), dtype=np.int64) + 4
    return sizes + values.type.byte_width


def partial_to_ipc(table: pa.Table, max_bytes: int) -> list[bytes]:
    """A partial as Arrow IPC streams (one per Kafka record) of at most about ``max_bytes``
    each, cut by the rows' real sizes; a row larger than that alone is a stream of its own."""
    if not table.num_rows:
        return []
    ends = np.cumsum(_row_bytes(table))
    streams = []
    start = 0
    while start < table.num_rows:
        base = ends[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, base + max_bytes, side="right")))
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table.slice(start, stop - start))
        streams.append(sink.getvalue().to_pybytes())
        start = stop
    return streams


def partial_from_ipc(data: bytes) -> pa.Table:
    """The partial an IPC stream of ``partial_to_ipc`` holds; ``BadPartial`` for anything else.

    Only the schema is checked here: encoded values are decoded (and refused) where they
    are used, by ``decode_values``."""
    if not data.endswith(_END_OF_STREAM):  # a reader takes a cut stream for a shorter one
        raise BadPartial("not a whole Arrow IPC stream (no end-of-stream marker)")
    try:
        table = pa.ipc.open_stream(data).read_all()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise BadPartial(f"not an Arrow IPC stream ({type(exc).__name__}: {exc})") from None
    schema = table.schema
    metadata = schema.metadata or {}
    kind = metadata.get(_KEY_KIND, b"bytes").decode(errors="replace")
    if schema.names != [KEY, VALUE] or schema.field(KEY).type != pa.binary() or kind not in KEY_KINDS:
        raise BadPartial(f"not a partial: schema {schema.to_string(show_schema_metadata=False)!r}, keys {kind!r}")
    value = schema.field(VALUE)
    if value.type in (pa.int64(), pa.float64()) and not value.metadata:
        return table
    if value.type != pa.binary() or value.metadata != _OBJECTS:
        encoding = (value.metadata or {}).get(_VALUE_ENCODING, b"none").decode(errors="replace")
        raise BadPartial(f"values of type {value.type} in the encoding {encoding!r}; mrkafka reads only its own")
    if table.column(VALUE).null_count or table.column(KEY).null_count:
        raise BadPartial("a null key or value")
    return table
