"""The map and reduce tasks of a batch run, in Hadoop's sense: a map task reads one split
and maps, combines and partitions it; a reduce task merges the partials of one reduce
partition and writes its part file.

The runners only move splits, partials and counters between these tasks: the inline runner
calls them in one process, the Ray runner wraps them in actors (a map actor runs a map task
per split; a reducer actor holds the reduce tasks of several partitions).
"""

from __future__ import annotations

import contextlib
import gc
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from mrkafka.batch.spill import Spills
from mrkafka.core.aggregate import Accumulator, Aggregation, finished
from mrkafka.core.counters import (
    BYTES_READ,
    BYTES_WRITTEN,
    COMBINE_INPUT_RECORDS,
    COMBINE_OUTPUT_RECORDS,
    MAP_INPUT_RECORDS,
    MAP_MILLIS,
    MAP_OUTPUT_RECORDS,
    MAP_TASKS,
    REDUCE_INPUT_GROUPS,
    REDUCE_INPUT_RECORDS,
    REDUCE_MILLIS,
    REDUCE_OUTPUT_RECORDS,
    REDUCE_TASKS,
    SPILLED_BYTES,
    SPILLED_RECORDS,
    Counters,
)
from mrkafka.core.keys import split_batches
from mrkafka.core.map_side import map_arrow, map_records
from mrkafka.core.partial import Rows, key_kind
from mrkafka.errors import BadInputError, JobFailedError, MrkafkaError
from mrkafka.io import formats
from mrkafka.io.splits import FileRange, Split, iter_lines, lines_array, pieces, read_range, read_split
from mrkafka.job import JobSpec

__all__ = ["MapTask", "ReduceTask"]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused while a task builds Python values in bulk.

    Values decoded from a partial, a job's dicts and lists, are millions of containers that
    live until the task ends; each full collection walks all of them, and building them
    triggers one every few hundred thousand: on a prefix index's reducer, finishing took
    2.6x as long with the collector on. What holds no cycle is freed by reference counts
    either way; what does is collected once the collector runs again.

    Tasks that run at once in threads (the local runner) share the collector: the first to
    start pauses it, the last to end lets it run again, if it ran before the first started."""
    with _Pauses.lock:
        if not _Pauses.count:
            _Pauses.collected = gc.isenabled()
            gc.disable()
        _Pauses.count += 1
    try:
        yield
    finally:
        with _Pauses.lock:
            _Pauses.count -= 1
            if not _Pauses.count and _Pauses.collected:
                gc.enable()


class _Pauses:
    """How many tasks pause the collector now, and whether it ran before the first did."""

    lock = threading.Lock()
    count = 0
    collected = False


class MapTask:
    """Map one split at a time: read its lines, map, combine, partition for R reducers."""

    def __init__(self, spec: JobSpec, reducers: int) -> None:
        self.spec = spec
        self.job = spec.instantiate()
        self.reducers = reducers
        self.aggregation = Aggregation(self.job, spec.vectorize) if reducers else None
        self.vectorized_map = spec.vectorize and self.job.has_map_arrow()

    def run(self, split: Split) -> tuple[Any, ...]:
        """Map and combine ``split``; return its ``Counters``, then one partial table per reducer."""
        started = time.monotonic()
        counters = Counters()
        table = self._map(split, counters, combine=True)
        counters.add(COMBINE_INPUT_RECORDS, counters.get(MAP_OUTPUT_RECORDS))
        counters.add(COMBINE_OUTPUT_RECORDS, table.num_rows)
        schema, kind, batches = table.schema, key_kind(table), table.to_batches()
        del table  # the batches alone hold the map output, freed as they are split
        partials = split_batches(batches, schema, self.reducers, kind)
        counters.add(MAP_MILLIS, _millis_since(started))
        return (counters, *partials)

    def run_grouped(self, split: Split, groups: int) -> tuple[Any, ...]:
        """``run``, its partials grouped for ``groups`` reducer actors: group g holds those of
        partitions g, g + groups, ... in order."""
        counters, *partials = self.run(split)
        return (counters, *(partials[g::groups] for g in range(groups)))

    def run_map_only(self, split: Split, path: str, fmt: str) -> Counters:
        """Map ``split`` and write its records, in input order, as one part file."""
        started = time.monotonic()
        counters = Counters()
        table = self._map(split, counters, combine=False)
        counters.add(BYTES_WRITTEN, formats.write_part(table, path, fmt))
        counters.add(MAP_MILLIS, _millis_since(started))
        return counters

    @gc_paused()
    def _map(self, split: Split, counters: Counters, combine: bool) -> pa.Table:
        """The map output of ``split``, through the combiner if ``combine``."""
        counters.add(MAP_TASKS)
        table = (self._map_arrow if self.vectorized_map else self._map_records)(split, counters, combine)
        counters.take_job_counters(self.spec.name, self.job)
        return table

    def _map_arrow(self, split: Split, counters: Counters, combine: bool) -> pa.Table:
        """Vectorized map, piece by piece; when combining, each piece's output is combined
        before the next is mapped, so a task holds one piece's map output at a time. A combined
        split's files are mapped together (``read_split``), not in a batch each."""
        offset, block = _read(read_split, split, counters)
        cut = len(split.ranges) == 1  # the pieces' offsets are offsets in the file

        def lines_of(at: int) -> str:
            return f"lines of {split.path}" + (f" from byte {offset + at}" if cut else "")

        batches = ((lines_array(piece), lines_of(at)) for at, piece in pieces(block))
        table, read, emitted = map_arrow(self.job, batches, self.aggregation if combine else None)
        counters.add(MAP_INPUT_RECORDS, read)
        counters.add(MAP_OUTPUT_RECORDS, emitted)
        return table

    def _map_records(self, split: Split, counters: Counters, combine: bool) -> pa.Table:
        """Map record by record, each record's key its line's byte offset in its own file."""
        reading = split.ranges[0]

        def records() -> Iterator[tuple[int, bytes]]:
            nonlocal reading
            for reading in split.ranges:
                offset, block = _read(read_range, reading, counters)
                yield from iter_lines(block, offset)

        def where(position: int) -> str:
            return f"{reading.path} at byte {position}"

        aggregation = self.aggregation if combine else None
        table, read, emitted = map_records(self.job, records(), where, aggregation, self.spec.skip_errors)
        counters.add(MAP_INPUT_RECORDS, read)
        counters.add(MAP_OUTPUT_RECORDS, emitted)
        return table


class ReduceTask:
    """Merge the partials of one reducer partition, then write its part file; with a memory
    budget, what outgrows it spills to sorted runs on local disk (``mrkafka.batch.spill``)."""

    def __init__(self, spec: JobSpec, index: int, memory: int | None = None) -> None:
        self.spec = spec
        self.index = index
        self.where = f"reducer {index}"  # what its errors name
        self.job = spec.instantiate()
        self.aggregation = Aggregation(self.job, spec.vectorize)
        self.accumulator = Accumulator(self.aggregation)
        self.memory = memory
        self.spills = Spills(self.aggregation, f"r{index}")
        self._spilled_input = 0  # reduce input records of the accumulators spilled
        self._busy_s = 0.0  # time spent merging, before the write

    @gc_paused()
    def add(self, partial: pa.Table) -> None:
        started = time.monotonic()
        if self.memory is not None and self.accumulator.nbytes() + partial.nbytes > self.memory // 3:
            self._spill()
        try:
            self.accumulator.add(partial)
        except Exception as exc:
            raise JobFailedError.raised("reduce", exc, self.where) from exc
        self._busy_s += time.monotonic() - started

    def _spill(self) -> None:
        """What the accumulator holds, as sorted runs, one per table held: unmerged, since a
        merge would hold them, their concatenation and its result at once."""
        self._spilled_input += self.accumulator.input_records
        for table in self.accumulator.tables():
            self.spills.spill(table)
        self.accumulator = Accumulator(self.aggregation)

    @gc_paused()
    def write(self, path: str, fmt: str) -> Counters:
        started = time.monotonic() - self._busy_s
        counters = Counters()
        counters.add(REDUCE_TASKS)
        counters.add(REDUCE_INPUT_RECORDS, self._spilled_input + self.accumulator.input_records)
        try:
            if self.spills:
                self._spill()
                written = formats.write_chunks(self._merged(counters), path, fmt, self.spec.writes_index)
                counters.add(SPILLED_RECORDS, self.spills.records)
                counters.add(SPILLED_BYTES, self.spills.bytes)
            else:
                table = self.accumulator.rows()
                counters.add(REDUCE_INPUT_GROUPS, table.num_rows)
                table = finished(table, self.job, self.where)
                counters.add(REDUCE_OUTPUT_RECORDS, table.num_rows)
                written = formats.write_part(table, path, fmt, self.spec.writes_index)
        finally:
            self.spills.close()
        counters.add(BYTES_WRITTEN, written)
        counters.take_job_counters(self.spec.name, self.job)
        counters.add(REDUCE_MILLIS, _millis_since(started))
        return counters

    def _merged(self, counters: Counters) -> Iterator[pa.Table | Rows]:
        """The spilled runs merged, finished, in key order, a chunk at a time."""
        chunks = self.spills.merged()
        while True:
            try:
                chunk = next(chunks, None)
            except MrkafkaError:
                raise
            except Exception as exc:  # the job's reduce, merging runs
                raise JobFailedError.raised("reduce", exc, self.where) from exc
            if chunk is None:
                return
            counters.add(REDUCE_INPUT_GROUPS, chunk.num_rows)
            chunk = finished(chunk, self.job, self.where)
            counters.add(REDUCE_OUTPUT_RECORDS, chunk.num_rows)
            yield chunk


def _read(
    read: Callable[[Any], tuple[int, bytearray]], what: Split | FileRange, counters: Counters
) -> tuple[int, bytearray]:
    """``read(what)``, counted in ``BYTES_READ``; a file that is gone, one clear line."""
    try:
        offset, block = read(what)
    except FileNotFoundError as exc:  # the driver found it when it planned the splits
        raise BadInputError(
            f"input {exc.filename or what.path} is not on {_node()}: on a Ray cluster, inputs (and the output) "
            "must be on a file system every node shares"
        ) from exc
    counters.add(BYTES_READ, len(block))
    return offset, block


def _node() -> str:
    """Where this task runs, as a user finds it: Ray's address of the node, and its host name."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        return f"node {ray.util.get_node_ip_address()} ({socket.gethostname()})"
    return f"host {socket.gethostname()}"


def _millis_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
