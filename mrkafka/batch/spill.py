"""A reduce task's state beyond its memory: sorted runs on local disk, merged when its part
is written (Hadoop's reduce-side spills and merge, Spark's external sort).

A reduce task holds its merged rows in an ``Accumulator``. Before a partial would take them
past a third of its budget (``--reduce-memory``; a merge of held rows holds them, their
concatenation and its result at once), it *spills*: each table held, sorted by key bytes
(stably: a key's rows keep their order), goes to a run file, an Arrow IPC file of batches of
``RUN_BATCH_ROWS`` rows, and the task starts again from nothing. When
it writes its part, what it holds becomes the last run and the runs are merged: at most
``FAN_IN`` at once (Hadoop's ``mapreduce.task.io.sort.factor``), the first ones merged into
bigger runs first where there are more.

A merge goes in rounds. Each run is read one batch at a time; a round takes,
from every run, the rows up to the smallest of the current batches' last keys, which no
later batch can precede, merges the values of each key with the job's own aggregation (runs
in the order they were written, so a key's values merge in the order they came, as without
spilling), and hands the rows on sorted.
Each round finishes the batch of at least one run; memory holds one batch per run.

Runs live in a directory of their own below the system's temporary directory (``TMPDIR``),
private to the user (mode 0700), removed when the task ends, failed or not.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from mrkafka.core.aggregate import Aggregation
from mrkafka.core.partial import KEY, as_objects, concat_mixed, sort_by_key
from mrkafka.errors import SetupError
from mrkafka.io import fs

__all__ = ["FAN_IN", "RUN_BATCH_ROWS", "Spills", "fair_share"]

#: Runs merged at once.
FAN_IN = 16
#: Rows per batch of a run file: what a merge holds of each run.
RUN_BATCH_ROWS = 1 << 16


class Spills:
    """The sorted runs of one reduce task, and their merge."""

    def __init__(self, aggregation: Aggregation, name: str) -> None:
        self.aggregation = aggregation
        self.name = name
        self.directory: str | None = None
        self.runs: list[str] = []
        self.files = 0  # run files made, merged ones included: their names
        self.records = 0  # what Hadoop's ``Spilled Records`` counts: rows written to runs
        self.bytes = 0

    def __bool__(self) -> bool:
        return bool(self.runs)

    def spill(self, rows: pa.Table) -> None:
        """Write ``rows`` (any order; a key may repeat) as a sorted run."""
        if self.directory is None:
            self.directory = tempfile.mkdtemp(prefix=f"mrkafka-spill-{self.name}-")
        self._write(iter([sort_by_key(rows)]))

    def _write(self, tables: Iterator[pa.Table]) -> None:
        try:
            self._write_runs(tables)
        except OSError as exc:  # a full disk
            raise SetupError(f"cannot spill to {self.directory}: {fs.reason(exc)} (TMPDIR chooses the disk)") from exc

    def merged(self) -> Iterator[pa.Table]:
        """Every key's rows merged into one, in key order, a sorted table at a time."""
        while len(self.runs) > FAN_IN:
            first, later = self.runs[:FAN_IN], self.runs[FAN_IN:]
            self.runs = []
            self._write(self._merge(first))  # a bigger run, in their place: runs stay in arrival order
            self.runs += later
            for path in first:
                os.remove(path)
        yield from self._merge(self.runs)

    def close(self) -> None:
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory, self.runs = None, []

    def _write_runs(self, tables: Iterator[pa.Table]) -> None:
        """Sorted tables, each after the one before in key order, as runs. A file has one
        schema: where a table's values differ in type from the file's (ints, then floats or
        Python values), they are written as Python values, in a second file if the first is
        not of those (runs of consecutive key ranges merge as any others). So a merge pass
        makes at most two runs of its sixteen."""
        sink = writer = schema = None
        try:
            for table in tables:
                if writer is not None and table.schema != schema:
                    table = as_objects(table)
                    if table.schema != schema:
                        self._close(sink, writer)
                        writer = None
                if writer is None:
                    path = os.path.join(self.directory, f"run-{self.files}.arrow")
                    self.files += 1
                    sink, schema = pa.OSFile(path, "wb"), table.schema
                    writer = pa.ipc.new_file(sink, schema)
                    self.runs.append(path)
                writer.write_table(table, max_chunksize=RUN_BATCH_ROWS)
                self.records += table.num_rows
        finally:
            if writer is not None:
                self._close(sink, writer)

    def _close(self, sink: pa.NativeFile, writer: pa.ipc.RecordBatchFileWriter) -> None:
        writer.close()
        self.bytes += sink.tell()
        sink.close()

    def _merge(self, paths: list[str]) -> Iterator[pa.Table]:
        readers = [_Run(path) for path in paths]
        try:
            yield from self._rounds(readers)
        finally:
            for run in readers:
                run.file.close()

    def _rounds(self, readers: list[_Run]) -> Iterator[pa.Table]:
        heads = [run.next() for run in readers]
        while any(head is not None for head in heads):
            bound = min(head.column(KEY)[-1].as_py() for head in heads if head is not None)
            taken = []
            for i, head in enumerate(heads):
                if head is None:
                    continue
                upto = int(pc.sum(pc.less_equal(head.column(KEY), pa.scalar(bound, pa.binary()))).as_py() or 0)
                taken.append(head.slice(0, upto))
                heads[i] = head.slice(upto) if upto < head.num_rows else readers[i].next()
            yield sort_by_key(self.aggregation.combine(concat_mixed(taken)))


class _Run:
    """A run file's batches, one at a time: read, not memory-mapped (the pages of a map stay
    in the process's memory once touched, until the merge ends)."""

    def __init__(self, path: str) -> None:
        self.file = pa.OSFile(path)
        self.reader = pa.ipc.open_file(self.file)
        self.batch = 0

    def next(self) -> pa.Table | None:
        while self.batch < self.reader.num_record_batches:
            batch = self.reader.get_batch(self.batch)
            self.batch += 1
            if batch.num_rows:
                return pa.Table.from_batches([batch])
        return None


def fair_share(reduce_tasks: int) -> int:
    """The default budget of a reduce task: half this machine's memory, shared by the tasks."""
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not POSIX
        memory = 8 << 30
    return memory // 2 // max(1, reduce_tasks)
