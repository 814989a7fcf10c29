"""Records as Arrow tables, and the merge of partial aggregates into held state.

A *partial* is a table with a binary ``key`` column (key bytes, see ``mrkafka.keys``: what
the output sorts by) and a ``value`` column. Values are ``int64`` or ``float64`` when
every value is one, else pickled Python objects, so that a job's reduce sees exactly what
its map produced. The schema's metadata records whether keys were str, bytes or int.

Both engines merge with ``Aggregation``: ``combine`` merges the rows of one table by key
(the map-side combiner, the batch reducer), ``merge`` merges two values (the stream state
update). A named built-in aggregate combines with Arrow's hash aggregation; anything else
runs the job's ``reduce``.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mrkafka.job import AGGREGATES, Job
from mrkafka.keys import from_key_bytes, key_bytes, kind_of

__all__ = [
    "MISSING",
    "Accumulator",
    "Aggregation",
    "empty_partial",
    "partial_from_arrow",
    "partial_from_ipc",
    "partial_from_pairs",
    "partial_to_ipc",
    "partial_to_pairs",
]

KEY = "key"
VALUE = "value"
_KEY_KIND = b"mrkafka.key"
#: What a held mapping gives for a key it does not hold (``None`` is a value a reduce may return).
MISSING: Any = object()
_PICKLED = {b"mrkafka.value": b"pickle"}
# Arrow's hash-aggregate functions for the built-ins (count is a sum of map-side ones).
_ARROW_AGGREGATE = {"sum": "sum", "count": "sum", "min": "min", "max": "max", "last": "last"}


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
    pickled = [pickle.dumps(v, protocol=5) for v in values]
    return pa.array(pickled, pa.binary()), pa.field(VALUE, pa.binary(), metadata=_PICKLED)


def is_pickled(table: pa.Table) -> bool:
    return table.schema.field(VALUE).metadata == _PICKLED


def decode_values(table: pa.Table) -> list[Any]:
    values = table.column(VALUE).to_pylist()
    return [pickle.loads(v) for v in values] if is_pickled(table) else values


def partial_from_pairs(keys: Sequence[Any], values: Sequence[Any], kind: str | None = None) -> pa.Table:
    """A partial from Python keys and values (keys of one kind: str, bytes or int)."""
    if kind is None:
        kind = kind_of(keys[0]) if keys else "bytes"
    key_array = pa.array([key_bytes(k) for k in keys], pa.binary())
    value_array, value_field = _encode_values(values)
    return pa.Table.from_arrays([key_array, value_array], schema=_schema(kind, value_field))


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


def partial_to_pairs(table: pa.Table) -> Iterator[tuple[Any, Any]]:
    """The ``(key, value)`` pairs of a partial, decoded to the Python types the job produced."""
    kind = key_kind(table)
    keys = table.column(KEY).to_pylist()
    return zip((from_key_bytes(k, kind) for k in keys), decode_values(table))


def empty_partial() -> pa.Table:
    return pa.Table.from_arrays(
        [pa.array([], pa.binary()), pa.array([], pa.int64())],
        schema=_schema("bytes", pa.field(VALUE, pa.int64())),
    )


class Aggregation:
    """How the values of one key merge: the job's built-in aggregate, or its ``reduce``."""

    def __init__(self, job: Job, vectorized: bool = True) -> None:
        # ``aggregate`` is the vectorized form's shortcut; per record, the job's own reduce runs.
        self.builtin = job.aggregate if vectorized else None
        self._merge = AGGREGATES[job.aggregate] if self.builtin else job.reduce

    def merge(self, held: Any, new: Any) -> Any:
        """Merge a newer value into a held one (input order matters only for ``last``)."""
        return self._merge(held, new)

    def combine(self, table: pa.Table) -> pa.Table:
        """One row per key, the values of each key merged in row order."""
        if self.builtin and not is_pickled(table) and not _may_overflow(self.builtin, table):
            op = _ARROW_AGGREGATE[self.builtin]
            merged = table.group_by(KEY, use_threads=False).aggregate([(VALUE, op)])
            return (
                merged.select([KEY, f"{VALUE}_{op}"])
                .rename_columns([KEY, VALUE])
                .replace_schema_metadata(table.schema.metadata)
            )
        held: dict[bytes, Any] = {}
        self.merge_table(held, table)
        return self.to_partial(held, key_kind(table))

    def merge_into(
        self,
        held: MutableMapping[Any, Any],
        keys: Iterable[Any],
        values: Iterable[Any],
        lookup: Callable[[Any], Any] | None = None,
    ) -> None:
        """Merge each value into what ``held`` holds for its key, in order; a key ``held`` lacks
        takes what ``lookup(key)`` gives, or the value itself where that is ``MISSING``.

        The one merge of a value into held state: the per-record combiner (Python keys), the
        batch reducer and the stream state update (key bytes) all go through it. ``None`` is a
        value like any other."""
        merge = self._merge
        for key, value in zip(keys, values):
            current = held.get(key, MISSING)
            if current is MISSING and lookup is not None:
                current = lookup(key)
            held[key] = value if current is MISSING else merge(current, value)

    def merge_table(self, held: MutableMapping[bytes, Any], table: pa.Table) -> None:
        """``merge_into`` with the rows of a partial."""
        self.merge_into(held, table.column(KEY).to_pylist(), decode_values(table))

    @staticmethod
    def to_partial(held: dict[bytes, Any], kind: str) -> pa.Table:
        values, value_field = _encode_values(list(held.values()))
        keys = pa.array(list(held), pa.binary())
        return pa.Table.from_arrays([keys, values], schema=_schema(kind, value_field))


def _may_overflow(builtin: str, table: pa.Table) -> bool:
    """Whether an int64 sum over ``table`` could wrap (Arrow's hash sum wraps silently).

    Then the values are summed as Python integers, which are exact; the partial holds them
    pickled where they outgrow int64."""
    values = table.column(VALUE)
    if _ARROW_AGGREGATE[builtin] != "sum" or not pa.types.is_integer(values.type) or not table.num_rows:
        return False
    bounds = pc.min_max(values)
    largest = max(abs(bounds["min"].as_py() or 0), abs(bounds["max"].as_py() or 0))
    return largest * table.num_rows > np.iinfo(np.int64).max


class Accumulator:
    """Partials merged as they arrive, in arrival order, into one row per key.

    Arrow-combined partials are buffered and merged once the buffer outgrows what is held,
    so each row is re-merged O(log n) times; reduce-combined partials go into a dict.
    """

    MIN_MERGE_ROWS = 1 << 20

    def __init__(self, aggregation: Aggregation) -> None:
        self.aggregation = aggregation
        self.kind: str | None = None
        self.input_records = 0
        self._held_table: pa.Table | None = None
        self._buffer: list[pa.Table] = []
        self._buffered_rows = 0
        self._held_dict: dict[bytes, Any] = {}

    def add(self, partial: pa.Table) -> None:
        self.input_records += partial.num_rows
        if not partial.num_rows:
            return
        if self.kind is None:
            self.kind = key_kind(partial)
        if self.aggregation.builtin and not is_pickled(partial) and not self._held_dict:
            self._buffer.append(partial)
            self._buffered_rows += partial.num_rows
            held_rows = self._held_table.num_rows if self._held_table is not None else 0
            if self._buffered_rows >= max(held_rows, self.MIN_MERGE_ROWS):
                self._flush()
            return
        if self._held_table is not None or self._buffer:
            # Values that Arrow cannot aggregate arrived: hold everything as Python values.
            for table in [self._held_table, *self._buffer]:
                if table is not None:
                    self.aggregation.merge_table(self._held_dict, table)
            self._held_table, self._buffer, self._buffered_rows = None, [], 0
        self.aggregation.merge_table(self._held_dict, partial)

    def _flush(self) -> None:
        tables = ([self._held_table] if self._held_table is not None else []) + self._buffer
        self._held_table = self.aggregation.combine(_concat(tables))
        self._buffer, self._buffered_rows = [], 0
        if is_pickled(self._held_table):  # sums outgrew int64: hold Python integers from now on
            self.aggregation.merge_table(self._held_dict, self._held_table)
            self._held_table = None

    def result(self) -> pa.Table:
        """One row per key (in no particular order)."""
        kind = self.kind or "bytes"
        if self._buffer:
            self._flush()
        if self._held_dict:
            return self.aggregation.to_partial(self._held_dict, kind)
        return self._held_table if self._held_table is not None else empty_partial()


def _concat(tables: Iterable[pa.Table]) -> pa.Table:
    tables = list(tables)
    first = tables[0]
    return pa.concat_tables([t.cast(first.schema) if t.schema != first.schema else t for t in tables])


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
    return pa.ipc.open_stream(data).read_all()
