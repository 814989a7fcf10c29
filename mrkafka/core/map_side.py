"""Mapping input records to partial tables: the map side both engines share.

A batch map task feeds it the lines of a split; a stream map task the values of one poll
of one input partition. ``where`` turns a record's position (a byte offset in a file, an
offset in a partition) into the words an error message needs.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pyarrow as pa

from mrkafka.core.aggregate import Accumulator, Aggregation
from mrkafka.core.partial import (
    VALUE,
    concat_mixed,
    concat_partials,
    empty_partial,
    partial_from_arrow,
    partial_from_pairs,
)
from mrkafka.core.values import UnsupportedValue
from mrkafka.errors import JobFailedError
from mrkafka.job import Job

__all__ = ["map_arrow", "map_records"]

log = logging.getLogger("mrkafka")

#: What a map task's combiner holds at most (Hadoop's ``io.sort.mb`` is 100 MB): past it, the
#: rows held go on to the reducers as they are and combining starts again, so a split of
#: distinct keys costs memory by its rows, not by a hash table of all of them (see ``_MapOutput``).
COMBINE_BYTES = 64 << 20


class _MapOutput:
    """Map output as it comes: Arrow tables (merged as they come by an ``Accumulator`` when
    there is a combiner, up to ``COMBINE_BYTES`` at a time), and Python pairs folded through
    the combiner (``Aggregation.merge_into``) every ``_COMBINE_EVERY`` pairs, so a task holds
    little more than its distinct keys."""

    def __init__(self, job: Job, aggregation: Aggregation | None) -> None:
        self.aggregation = aggregation
        self.count = job.aggregate == "count"
        self.emitted = 0
        self.tables: list[pa.Table] = []
        self.accumulator = Accumulator(aggregation) if aggregation is not None else None
        self.held: dict[Any, Any] = {}
        self.keys: list[Any] = []
        self.values: list[Any] = []
        self.key_type: type | None = None

    def add_table(self, table: pa.Table, where: str) -> None:
        self.emitted += table.num_rows
        if self.count:
            table = table.set_column(1, VALUE, pa.array(np.ones(table.num_rows, np.int64)))
        self._hold(table, where)

    def _hold(self, table: pa.Table, where: str) -> None:
        if self.accumulator is None:
            self.tables.append(table)
            return
        try:
            self.accumulator.add(table)
        except Exception as exc:
            raise JobFailedError.raised("reduce (as combiner)", exc, where) from exc
        if self.accumulator.nbytes() > COMBINE_BYTES:  # keys too many to combine further here
            self.tables.append(self.accumulator.result())
            self.accumulator = Accumulator(self.aggregation)

    def add_pairs(self, pairs: Iterable[tuple[Any, Any]], where: Callable[[], str]) -> None:
        """Add the pairs of one record (or one batch) whole: if the pairs fail to come, none is added."""
        keys, values = self.keys, self.values
        start = len(keys)
        try:
            for key, value in pairs:
                if type(key) is not self.key_type:
                    self.key_type = _check_key(key, self.key_type, where())
                keys.append(key)
                values.append(1 if self.count else value)
        except BaseException:
            del keys[start:], values[start:]
            raise
        self.emitted += len(keys) - start
        if self.aggregation is not None and len(keys) >= _COMBINE_EVERY:
            self._fold(f"the records up to {where()}")

    def add_batch(self, pairs: Iterable[tuple[Any, Any]], where: str) -> None:
        """Add the pairs a vectorized map returned for a whole batch (checked in bulk)."""
        columns = list(zip(*pairs))
        keys, values = (list(columns[0]), list(columns[1])) if columns else ([], [])
        for key_type in set(map(type, keys)):
            if key_type is not self.key_type:
                sample = next(key for key in keys if type(key) is key_type)
                self.key_type = _check_key(sample, self.key_type, where)
        self.emitted += len(keys)
        self.keys += keys
        self.values += [1] * len(values) if self.count else values
        if self.aggregation is not None and len(self.keys) >= _COMBINE_EVERY:
            self._fold(where)

    def _fold(self, where: str) -> None:
        if not self.held:  # the first fold: keys that are all distinct need no merge
            held = dict(zip(self.keys, self.values))
            if len(held) == len(self.keys):
                self.held, self.keys, self.values = held, [], []
                return
        try:
            self.aggregation.merge_into(self.held, self.keys, self.values)
        except Exception as exc:
            raise JobFailedError.raised("reduce (as combiner)", exc, where) from exc
        self.keys, self.values = [], []

    def partial(self, where: str) -> pa.Table:
        """Everything added, as one partial (one row per key when combining)."""
        if self.aggregation is not None and self.keys:
            self._fold(where)
        keys, values = (list(self.held), list(self.held.values())) if self.held else (self.keys, self.values)
        if keys:
            try:
                pairs = partial_from_pairs(keys, values)
            except UnsupportedValue as exc:
                raise JobFailedError(f"map emitted {exc} (in {where})") from exc
            self._hold(pairs, where)
        if self.accumulator is not None:
            try:
                combined = self.accumulator.result()
            except Exception as exc:
                raise JobFailedError.raised("reduce (as combiner)", exc, where) from exc
            return concat_mixed([*self.tables, combined]) if self.tables else combined
        if not self.tables:
            return empty_partial()
        return self.tables[0] if len(self.tables) == 1 else concat_partials(self.tables)


def map_arrow(
    job: Job, batches: Iterable[tuple[pa.Array, str]], aggregation: Aggregation | None
) -> tuple[pa.Table, int, int]:
    """The job's vectorized map over ``(lines, where)`` batches, as one partial, combined with
    ``aggregation`` when given (count's values made 1). ``map_arrow`` returns a table, or
    Python ``(key, value)`` pairs, which are combined as the per-record map's are. Returns
    the partial, the lines read and the records the map emitted."""
    output = _MapOutput(job, aggregation)
    read = 0
    where = "no lines"
    for lines, where in batches:
        read += len(lines)
        try:
            result = job.map_arrow(lines)
            if isinstance(result, pa.Table):
                output.add_table(partial_from_arrow(result), where)
            else:
                output.add_batch(result, where)
        except JobFailedError:
            raise
        except Exception as exc:
            raise JobFailedError.raised("map_arrow", exc, where) from exc
    return output.partial(where), read, output.emitted


def map_records(
    job: Job,
    records: Iterable[tuple[int, bytes]],
    where: Callable[[int], str],
    aggregation: Aggregation | None,
    skip_errors: bool = False,
) -> tuple[pa.Table, int, int]:
    """The job's per-record map over ``(position, line)`` records, combined with ``aggregation``
    when given.

    With ``skip_errors`` a record the map raises on is skipped whole (none of its pairs kept),
    counted in the job's ``bad_records`` and logged with its position (Kafka Streams'
    log-and-continue); else it fails the task. Returns the partial, the records read and
    the pairs the map emitted.
    """
    as_text = job.input_type is not bytes
    output = _MapOutput(job, aggregation)
    read = 0
    position = -1
    for position, line in records:
        read += 1
        value = line.decode("utf-8", "surrogateescape") if as_text else line
        try:
            output.add_pairs(job.map(position, value), functools.partial(where, position))
        except JobFailedError:
            raise
        except Exception as exc:
            if not skip_errors:
                raise JobFailedError.raised("map", exc, where(position)) from exc
            job.increment_counter("bad_records")
            log.warning("skipped the record at %s: map raised %s: %s", where(position), type(exc).__name__, exc)
    return output.partial(f"the records up to {where(position)}"), read, output.emitted


_KEY_TYPES = (str, bytes, int)
#: With a combiner, map output is merged into the held values every this many pairs.
_COMBINE_EVERY = 1 << 16


def _check_key(key: Any, seen: type | None, where: str) -> type:
    """The type of ``key``, if it may be a key after keys of type ``seen``; else the job's error."""
    if type(key) not in _KEY_TYPES:
        raise JobFailedError(f"map emitted a {type(key).__name__} key {key!r}: keys are str, bytes or int ({where})")
    if seen is not None:
        raise JobFailedError(
            f"map emitted a {type(key).__name__} key {key!r} after {seen.__name__} keys: a job's keys are of one "
            f"kind ({where})"
        )
    return type(key)
