"""The stream engine's pure logic: what a map task and a reduce task compute, without Kafka.

``StreamMapper`` takes the records of input partitions (each a *task*, as Kafka Streams says)
and holds their combined partials until the worker drains a task's blocks to produce them.
``StreamReducer`` merges partial blocks into the state of one repartition partition, keeps
an interval's merges apart from the committed store, and hands out the changelog and output
records of what changed; ``committed`` moves them into the store, ``abort`` drops them.

Records are any objects with ``offset``, ``key``, ``value``, ``timestamp`` and ``headers``
(``mrkafka.kafka.rdkafka.Record``, or a test's own), so the logic is tested with lists.

What a reducer reads (repartition blocks, changelog values) is refused, never run: a record
that is not a partial, or a value not in ``mrkafka.core.values``' encoding, stops the
reducer with one line naming topic, partition and offset (``BadInputError``); under
``--on-error skip`` it is logged, counted in the job's ``bad_records``, and left out.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from mrkafka.core import MISSING
from mrkafka.core.aggregate import Accumulator, Aggregation, finished
from mrkafka.core.counters import (
    BYTES_READ,
    COMBINE_INPUT_RECORDS,
    COMBINE_OUTPUT_RECORDS,
    MAP_INPUT_RECORDS,
    MAP_OUTPUT_RECORDS,
    REDUCE_INPUT_RECORDS,
    REDUCE_OUTPUT_RECORDS,
    Counters,
)
from mrkafka.core.keys import (
    KEY_KINDS,
    from_key_bytes,
    from_topic_bytes,
    key_bytes,
    partition_keys,
    split_by_partition,
    topic_bytes,
)
from mrkafka.core.map_side import map_arrow, map_records
from mrkafka.core.partial import KEY, BadPartial, Rows, decode_values, key_kind, partial_from_ipc, partial_to_ipc
from mrkafka.core.serdes import Serde
from mrkafka.core.values import UndecodableValue, UnsupportedValue
from mrkafka.core.values import decode as decode_value
from mrkafka.core.values import encode as encode_value
from mrkafka.errors import BadInputError, JobFailedError
from mrkafka.io.index import levenshtein
from mrkafka.job import JobSpec
from mrkafka.obs.histogram import LatencyHistogram
from mrkafka.stream.state.stores import Checkpoint, StateStore, digest

__all__ = [
    "BLOCK_BYTES",
    "KEY_KIND_HEADER",
    "Block",
    "Changes",
    "Mapped",
    "StreamMapper",
    "StreamReducer",
]

log = logging.getLogger(__name__)

#: Arrow block size on the repartition topic, by the rows' real sizes (a longer row goes alone).
BLOCK_BYTES = 900_000
#: The header of a changelog record that names the kind of its key (str, bytes or int).
KEY_KIND_HEADER = "mrkafka.key"


class Block(NamedTuple):
    """One repartition record: partial pairs that all belong to repartition ``partition``."""

    partition: int
    data: bytes
    timestamp: int


class Mapped(NamedTuple):
    """One poll of one input partition, mapped and combined."""

    table: pa.Table
    newest: int  # the newest input timestamp in it
    counters: Counters
    where: str


class StreamMapper:
    """Maps and combines the records of input partitions; drains a task's partial blocks.

    ``counters`` hold what was committed only: a task's counts wait beside what it holds, and
    move into them when the worker says its commit went through (``committed``); a task dropped
    (revoked, aborted) takes its counts with it, as its input is read again."""

    def __init__(self, spec: JobSpec, reducers: int, input_topic: str, block_bytes: int = BLOCK_BYTES) -> None:
        self.spec = spec
        self.job = spec.instantiate()
        self.reducers = reducers
        self.input_topic = input_topic
        self.block_bytes = block_bytes
        self.aggregation = Aggregation(self.job, spec.vectorize)
        self.vectorized = spec.vectorize and self.job.has_map_arrow()
        self.counters = Counters()
        self._counted: dict[int, Counters] = {}  # per input partition: counts of what it holds
        self._draining: dict[int, Counters] = {}  # per input partition: counts of what it drained
        self._held: dict[int, Accumulator] = {}  # per input partition: partials not yet produced
        self._timestamps: dict[int, int] = {}  # newest input timestamp held, per input partition

    @property
    def held_records(self) -> int:
        return sum(a.input_records for a in self._held.values())

    def map(self, partition: int, records: Sequence[Any]) -> Mapped | None:
        """Map and combine one poll of one input partition; what the task holds is unchanged
        (a worker maps off its event loop, and holds the result on it with ``hold``)."""
        if not records:
            return None
        counters = Counters()
        where_all = f"topic {self.input_topic} partition {partition} offsets {records[0].offset}-{records[-1].offset}"
        if self.job.stream.keyed_input:
            for record in records:
                if record.key is None:
                    raise BadInputError(
                        f"topic {self.input_topic} partition {partition} offset {record.offset} has no key, and "
                        f"{self.spec.name} needs keyed input (produce it keyed, e.g. mrkafka produce --key-sep SEP "
                        "--key-field N)"
                    )
        values = [r.value if r.value is not None else b"" for r in records]
        counters.add(MAP_INPUT_RECORDS, len(values))
        counters.add(BYTES_READ, sum(map(len, values)))
        # Combining each poll first keeps the hash tables small: measured faster than one big merge.
        if self.vectorized:
            batches = [(pa.array(values, pa.binary()), where_all)]
            table, _, emitted = map_arrow(self.job, batches, self.aggregation)
        else:

            def where(offset: int) -> str:
                return f"topic {self.input_topic} partition {partition} offset {offset}"

            pairs = ((r.offset, v) for r, v in zip(records, values))
            table, _, emitted = map_records(self.job, pairs, where, self.aggregation, self.spec.skip_errors)
        counters.add(MAP_OUTPUT_RECORDS, emitted)
        counters.add(COMBINE_INPUT_RECORDS, emitted)  # a poll's map output is all combined
        counters.take_job_counters(self.spec.name, self.job)
        return Mapped(table, max(r.timestamp for r in records), counters, where_all)

    def hold(self, partition: int, mapped: Mapped | None) -> None:
        """Add a mapped poll to what its task holds."""
        if mapped is None:
            return
        try:
            self._held.setdefault(partition, Accumulator(self.aggregation)).add(mapped.table)
        except Exception as exc:
            raise JobFailedError.raised("reduce (as combiner)", exc, mapped.where) from exc
        self._timestamps[partition] = max(self._timestamps.get(partition, mapped.newest), mapped.newest)
        self._counted.setdefault(partition, Counters()).update(mapped.counters)

    def drain(self, partition: int) -> list[Block]:
        """The combined partials of one task as repartition blocks; the task holds nothing after."""
        accumulator = self._held.pop(partition, None)
        timestamp = self._timestamps.pop(partition, 0)
        if accumulator is None:
            return []
        try:
            table = accumulator.result()
        except UnsupportedValue as exc:
            raise JobFailedError(f"reduce (as combiner) made {exc} (input partition {partition})") from exc
        counted = self._draining.setdefault(partition, Counters())
        counted.update(self._counted.pop(partition, Counters()))  # a poll held after this counts at the next commit
        counted.add(COMBINE_OUTPUT_RECORDS, table.num_rows)
        return [
            Block(k, data, timestamp)
            for k, part in enumerate(split_by_partition(table, self.reducers, key_kind(table)))
            for data in partial_to_ipc(part, self.block_bytes)
        ]

    def skipped(self, partition: int) -> None:
        """A record of task ``partition`` was skipped (``--on-error skip``): counted in the job's
        ``bad_records`` with what the task holds."""
        self._counted.setdefault(partition, Counters()).add((self.spec.name, "bad_records"), 1)

    def drained(self, partition: int) -> Counters:
        """The counts of what task ``partition`` drained since its last commit."""
        return self._draining.get(partition, Counters())

    def committed(self, partition: int) -> None:
        """The worker committed what it drained of task ``partition``: count it."""
        self.counters.update(self._draining.pop(partition, Counters()))

    def drop(self, partitions: Iterable[int] | None = None) -> None:
        """Forget what tasks hold (all, or those of ``partitions``), and their counts: their
        input is read again."""
        every = self._held.keys() | self._counted.keys() | self._draining.keys()
        for partition in list(every) if partitions is None else partitions:
            self._held.pop(partition, None)
            self._timestamps.pop(partition, None)
            self._counted.pop(partition, None)
            self._draining.pop(partition, None)


@dataclass
class Changes:
    """What one commit of a reducer writes: changelog records (to the reducer's own
    partition) and output records (to the partition the key's topic bytes give)."""

    changelog: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = field(default_factory=list)
    output: list[tuple[int, bytes, bytes | None]] = field(default_factory=list)
    latencies_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def last_changelog_digest(self) -> str | None:
        return digest(*self.changelog[-1][:2]) if self.changelog else None


def _changelog_entry(record: Any) -> tuple[str, bytes, Any]:
    """The key kind, key bytes and state (``MISSING``: deleted) of a changelog record."""
    kind = dict(record.headers or ()).get(KEY_KIND_HEADER, b"bytes").decode(errors="replace")
    if kind not in KEY_KINDS:
        raise UndecodableValue(f"a key of unknown kind {kind!r}")
    if record.key is None or (kind == "int" and len(record.key) != 8):
        raise UndecodableValue(f"a {kind} key of {len(record.key or b'')} bytes")
    value = MISSING if record.value is None else decode_value(record.value)
    return kind, key_bytes(from_topic_bytes(record.key, kind)), value


class StreamReducer:
    """The state of one repartition partition: a committed store and an interval's merges."""

    def __init__(
        self, spec: JobSpec, partition: int, output_partitions: int, store: StateStore, changelog: str = "changelog"
    ) -> None:
        self.spec = spec
        self.partition = partition
        self.changelog = changelog
        self.changelog_id: str | None = None  # the changelog's topic id, once the worker read it
        self.output_partitions = output_partitions
        self.job = spec.instantiate()
        self.aggregation = Aggregation(self.job, spec.vectorize)
        self.serde = Serde(self.job.stream.value_serde)
        self.store = store
        self.kind: str | None = store.checkpoint.kind if store.checkpoint else None
        self.counters = Counters()  # what was committed
        self.events = Counters()  # what is not counted per commit: records refused while restoring
        self.latency = LatencyHistogram()
        self._input_records = 0  # merged since the last commit
        self._bad_records = 0  # skipped since the last commit (--on-error skip)
        self._pending: dict[bytes, Any] = {}  # merged since the last commit: key bytes -> state
        self._newest: dict[bytes, int] = {}  # key bytes -> newest input timestamp that changed it

    # -- restore ------------------------------------------------------------------------------

    def restore(self, records: Iterable[Any], end: int) -> int:
        """Apply changelog records to the store, which is then current to offset ``end``."""
        changes: dict[bytes, Any] = {}
        last = None
        for record in records:
            last = record
            try:
                kind, key, value = _changelog_entry(record)
            except UndecodableValue as exc:
                self._refuse(f"topic {self.changelog} partition {self.partition} offset {record.offset}", exc)
                self.events.add((self.spec.name, "bad_records"), 1)
                continue
            self.kind = kind
            changes[key] = value
        if last is not None:
            checkpoint = Checkpoint(end, last.offset, digest(last.key, last.value), self.kind, self.changelog_id)
        else:  # nothing read (an empty changelog, a gap): the same last record, a later offset
            checkpoint = dataclasses.replace(
                self.store.checkpoint or Checkpoint(end), offset=end, kind=self.kind, topic_id=self.changelog_id
            )
        self.store.write(changes, checkpoint)
        return len(changes)

    # -- processing ---------------------------------------------------------------------------

    def merge(self, partial: pa.Table, timestamp: int, where: str = "", values: list[Any] | None = None) -> None:
        """Merge a partial block (its ``values`` decoded, if they are) into the state (held
        apart until ``committed``)."""
        if not partial.num_rows:
            return
        self.kind = key_kind(partial)
        self._input_records += partial.num_rows
        keys = partial.column(KEY).to_pylist()
        try:
            values = decode_values(partial) if values is None else values
            self.aggregation.merge_into(self._pending, keys, values, self.store.get)
        except Exception as exc:
            raise JobFailedError.raised("reduce", exc, where or f"repartition partition {self.partition}") from exc
        newest = self._newest
        for key in keys:
            if timestamp > newest.get(key, -1):
                newest[key] = timestamp

    def merge_block(self, data: bytes, timestamp: int, where: str = "") -> None:
        """Merge one repartition record (see the module docstring for what is refused)."""
        try:
            partial = partial_from_ipc(data)
            values = decode_values(partial)
            if self.kind is not None and key_kind(partial) != self.kind and partial.num_rows:
                raise BadPartial(f"keys of kind {key_kind(partial)} where this partition's are {self.kind}")
        except (BadPartial, UndecodableValue) as exc:
            self._refuse(where or f"repartition partition {self.partition}", exc)
            self._bad_records += 1
            return
        self.merge(partial, timestamp, where, values)

    def _refuse(self, where: str, exc: Exception) -> None:
        """A record that is not what mrkafka wrote: one line, or (``--on-error skip``) a warning."""
        if not self.spec.skip_errors:
            raise BadInputError(f"{where} is not a record mrkafka wrote: {exc} (--on-error skip skips such records)")
        log.warning("skipped the record at %s, which mrkafka did not write: %s", where, exc)

    def changes(self, now_ms: float | None = None) -> Changes:
        """The changelog and output records of every key changed since the last commit.

        Raises the job's error (``finish``, or a value the output serde cannot hold) before
        anything is written, naming the key."""
        if not self._pending:
            return Changes()
        kind = self.kind or "bytes"
        finish = self.job.finish if self.job.has_finish() else None
        keys = list(self._pending)
        topic_keys = [topic_bytes(from_key_bytes(k, kind)) for k in keys]
        out_partitions = partition_keys(pa.array(keys, pa.binary()), kind, self.output_partitions).tolist()
        header = [(KEY_KIND_HEADER, kind.encode())]
        changes = Changes()
        for key, topic_key, out_partition in zip(keys, topic_keys, out_partitions):
            state = self._pending[key]
            python_key = from_key_bytes(key, kind)
            try:
                changes.changelog.append((topic_key, encode_value(state), header))
            except UnsupportedValue as exc:
                raise JobFailedError(f"reduce made {exc} (key {python_key!r})") from exc
            try:
                value = finish(python_key, state) if finish else state
                encoded = self.serde.encode(value)
            except Exception as exc:
                what = "finish" if finish else "the output serde"
                raise JobFailedError.raised(what, exc, f"key {python_key!r}") from exc
            changes.output.append((out_partition, topic_key, encoded))
        now_ms = time.time() * 1000 if now_ms is None else now_ms
        changes.latencies_ms = now_ms - np.fromiter((self._newest[k] for k in keys), np.float64, len(keys))
        return changes

    def counted(self, changes: Changes) -> Counters:
        """The counts of one commit: the records merged since the last, and ``changes``' output."""
        counters = Counters()
        counters.add(REDUCE_INPUT_RECORDS, self._input_records)
        if changes.output:
            counters.add(REDUCE_OUTPUT_RECORDS, len(changes.output))
        if self._bad_records:
            counters.add((self.spec.name, "bad_records"), self._bad_records)
        return counters

    def committed(self, changes: Changes, changelog_last_offset: int | None) -> None:
        """The changes are on the changelog (last at ``changelog_last_offset``) and the input
        position is committed: move them into the store, with the changelog position."""
        if changes.changelog and changelog_last_offset is not None:
            checkpoint = Checkpoint(
                changelog_last_offset + 1,
                changelog_last_offset,
                changes.last_changelog_digest(),
                self.kind,
                self.changelog_id,
            )
            self.store.write(self._pending, checkpoint)
            self.latency.record(changes.latencies_ms)
        self.counters.update(self.counted(changes))
        self.abort()

    def abort(self) -> None:
        """Forget the merges since the last commit, and their counts: their input is read again."""
        self._pending, self._newest, self._input_records, self._bad_records = {}, {}, 0, 0

    # -- interactive queries --------------------------------------------------------------------

    def query(self, key: str, edits: int = 0, deadline: float = math.inf) -> list[tuple[str, int, Any]]:
        """``(key, distance, value)`` for ``key`` (and, with ``edits``, every key within that many
        Levenshtein edits) in the committed state, values through ``finish``, as they are on the
        output topic: Kafka Streams' interactive queries, read committed. A scan still going at
        ``deadline`` (``time.time()``) raises ``TimeoutError``. Safe in a thread of its own: the
        store's items are a snapshot."""
        if self.kind is None:  # nothing merged or restored yet
            return []
        if edits:
            found = []
            for n, (k, v) in enumerate(self.store.items()):
                if n % 4096 == 0 and time.time() > deadline:
                    raise TimeoutError(f"a look-up within {edits} edits of {key!r}")
                text = k.decode("utf-8", "surrogateescape")
                distance = levenshtein(key, text, edits)
                if distance <= edits:
                    found.append((text, distance, k, v))
        elif self.kind != "int" or re.fullmatch(r"-?[0-9]+", key):
            data = str(int(key)).encode() if self.kind == "int" else key.encode("utf-8", "surrogateescape")
            value = self.store.get(data)
            found = [] if value is MISSING else [(key, 0, data, value)]
        else:
            found = []
        rows = []
        for text, distance, data, value in found:
            if self.job.has_finish():
                value = self.job.finish(from_key_bytes(data, self.kind), value)
            if value is not None:
                rows.append((text, distance, value))
        return rows

    # -- the end of a bounded run -------------------------------------------------------------

    def final_rows(self) -> Rows:
        """The committed state of this partition, through ``finish``, as rows sorted by key."""
        pairs = list(self.store.items())
        table = Rows([k for k, _ in pairs], [v for _, v in pairs], self.kind or "bytes")
        return finished(table, self.job, f"repartition partition {self.partition}")
