"""The merge of values into held state, the one both engines use.

``Aggregation`` merges: ``combine`` merges the rows of one partial by key (the map-side
combiner, the batch reducer), ``merge_into`` merges values into a held mapping (the
per-record combiner, the stream state update). A named built-in aggregate combines in
compiled code (integer sums in ``mrkafka.core.kernels``, the rest with Arrow's hash
aggregation); anything else, and every per-record run, runs the job's ``reduce``.
``Accumulator`` merges partials as they arrive; ``finished`` applies the job's ``finish`` to
the merged rows and sorts them, as both engines' reducers do last.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

import numpy as np
import pyarrow as pa

from mrkafka.core import MISSING, kernels
from mrkafka.core.keys import from_key_bytes
from mrkafka.core.partial import (
    KEY,
    VALUE,
    Rows,
    concat_partials,
    decode_values,
    empty_partial,
    holds_objects,
    key_kind,
    partial_from_key_bytes,
    sort_by_key,
)
from mrkafka.errors import JobFailedError
from mrkafka.job import AGGREGATES, Job

__all__ = ["Accumulator", "Aggregation", "finish_partial", "finished"]

# Arrow's hash-aggregate functions for the built-ins (count is a sum of map-side ones).
_ARROW_AGGREGATE = {"sum": "sum", "count": "sum", "min": "min", "max": "max", "last": "last"}


class Aggregation:
    """How the values of one key merge: the job's built-in aggregate, or its ``reduce``."""

    def __init__(self, job: Job, vectorized: bool = True) -> None:
        # ``aggregate`` is the vectorized form's shortcut; per record, the job's own reduce runs.
        self.builtin = job.aggregate if vectorized else None
        self._merge = AGGREGATES[job.aggregate] if self.builtin else job.reduce

    def combine(self, table: pa.Table) -> pa.Table:
        """One row per key, the values of each key merged in row order."""
        if self.builtin and not holds_objects(table):
            op = _ARROW_AGGREGATE[self.builtin]
            values = table.column(VALUE)
            if op != "sum" or not pa.types.is_integer(values.type):
                merged = table.group_by(KEY, use_threads=False).aggregate([(VALUE, op)])
                return (
                    merged.select([KEY, f"{VALUE}_{op}"])
                    .rename_columns([KEY, VALUE])
                    .replace_schema_metadata(table.schema.metadata)
                )
            # Integer sums in one compiled pass, which (unlike Arrow's) tells when a sum
            # outgrows int64: then Python's integers below keep it exact.
            summed = kernels.group_sum(table.column(KEY), np.asarray(values, np.int64))
            if summed is not None:
                keys, sums, _ = summed
                schema = pa.schema([pa.field(KEY, keys.type), pa.field(VALUE, pa.int64())], table.schema.metadata)
                return pa.Table.from_arrays([keys, pa.array(sums)], schema=schema)
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
        return partial_from_key_bytes(list(held), list(held.values()), kind)


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
        if self.aggregation.builtin and not holds_objects(partial) and not self._held_dict:
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
        self._held_table = self.aggregation.combine(concat_partials(tables))
        self._buffer, self._buffered_rows = [], 0
        if holds_objects(self._held_table):  # sums outgrew int64: hold Python integers from now on
            self.aggregation.merge_table(self._held_dict, self._held_table)
            self._held_table = None

    def nbytes(self) -> int:
        """About the memory the held rows take: Arrow's buffers, and Python values estimated
        from a sample of the held entries."""
        size = sum(table.nbytes for table in (self._held_table, *self._buffer) if table is not None)
        if self._held_dict:
            sample = list(itertools.islice(self._held_dict.items(), _SAMPLE))
            entry = sum(sys.getsizeof(key) + _python_bytes(value) for key, value in sample) / len(sample)
            size += int((entry + _DICT_ENTRY_BYTES) * len(self._held_dict))
        return size

    def tables(self) -> list[pa.Table]:
        """What is held, unmerged, as partials in arrival order (a key may have a row in
        several): what a spill writes without paying for a merge first."""
        if self._held_dict:
            return [self.result()]
        return [table for table in (self._held_table, *self._buffer) if table is not None]

    def result(self) -> pa.Table:
        """One row per key (in no particular order), as a partial."""
        held = self.rows()
        return held.table() if isinstance(held, Rows) else held

    def rows(self) -> pa.Table | Rows:
        """One row per key (in no particular order): Python values held come as ``Rows``, not
        pickled into a partial (what a reducer's last steps take), Arrow values as a partial."""
        if self._buffer:
            self._flush()
        if self._held_dict:
            return Rows(list(self._held_dict), list(self._held_dict.values()), self.kind or "bytes")
        return self._held_table if self._held_table is not None else empty_partial()


#: Entries sampled to estimate the size of held Python values, and what a dict adds per entry.
_SAMPLE = 64
_DICT_ENTRY_BYTES = 100


def _python_bytes(value: Any, depth: int = 3) -> int:
    """About what a Python value takes in memory, with what it holds (to ``depth`` levels)."""
    size = sys.getsizeof(value)
    if depth and isinstance(value, dict):
        return size + sum(_python_bytes(k, depth - 1) + _python_bytes(v, depth - 1) for k, v in value.items())
    if depth and isinstance(value, (list, tuple, set, frozenset)):
        return size + sum(_python_bytes(v, depth - 1) for v in value)
    return size


def finished(part: pa.Table | Rows, job: Job, where: str) -> pa.Table | Rows:
    """A reducer's last step before writing, in both engines: the job's ``finish`` over every
    row (the job's error names ``where``), then the rows sorted by key bytes."""
    if job.has_finish():
        try:
            part = finish_partial(part, job.finish)
        except Exception as exc:
            raise JobFailedError.raised("finish", exc, where) from exc
    return sort_by_key(part)


def finish_partial(part: pa.Table | Rows, finish: Callable[[Any, Any], Any]) -> Rows:
    """Apply the job's ``finish(key, value)`` to every row; a row finished to ``None`` is deleted."""
    rows = part if isinstance(part, Rows) else Rows.of(part)
    kind = rows.kind
    keys, values = [], []
    for key, value in zip(rows.keys, rows.values):
        out = finish(from_key_bytes(key, kind), value)
        if out is not None:
            keys.append(key)
            values.append(out)
    return Rows(keys, values, kind)
