"""What a reduce task computes, without Kafka: ``StreamReducer`` merges partial blocks into
the state of one repartition partition, keeps an interval's merges apart from the committed
store, and hands out the changelog and output records of what changed; ``committed`` moves
them into the store, ``abort`` drops them.

A built-in aggregate over int64 values, into a store that holds columns, merges as columns
(``mrkafka.stream.state.merges``): the changed keys' states, changelog and output records
are computed a column at a time, and Python runs per key only for a job's own ``finish``.
Anything else merges record by record, through ``Aggregation.merge_into``.

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
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from mrkafka.core import MISSING
from mrkafka.core.aggregate import Aggregation, finished
from mrkafka.core.counters import (
    REDUCE_INPUT_RECORDS,
    REDUCE_OUTPUT_RECORDS,
    Counters,
)
from mrkafka.core.kernels.msgpack import pack_ints, unpack_ints
from mrkafka.core.keys import (
    KEY_KINDS,
    from_key_bytes,
    from_topic_bytes,
    key_bytes,
    partition_keys,
    topic_bytes,
    topic_bytes_array,
)
from mrkafka.core.partial import (
    KEY,
    VALUE,
    BadPartial,
    Rows,
    decode_values,
    holds_objects,
    key_kind,
    partial_from_ipc,
    partial_of_ints,
)
from mrkafka.core.serdes import Serde
from mrkafka.core.values import UndecodableValue, UnsupportedValue
from mrkafka.core.values import decode as decode_value
from mrkafka.core.values import encode as encode_value
from mrkafka.errors import BadInputError, JobFailedError
from mrkafka.io.index import levenshtein
from mrkafka.job import JobSpec
from mrkafka.obs.histogram import LatencyHistogram
from mrkafka.stream.state.merges import ColumnMerges, foldable
from mrkafka.stream.state.stores import Checkpoint, StateStore, digest

__all__ = ["KEY_KIND_HEADER", "Changes", "StreamReducer"]

log = logging.getLogger(__name__)

#: The header of a changelog record that names the kind of its key (str or int); a record
#: without it has a bytes key. Bytes keys (word count's) go without: a header costs about a
#: microsecond a record to produce.
KEY_KIND_HEADER = "mrkafka.key"


def _changelog_header(kind: str) -> list[tuple[str, bytes]] | None:
    return None if kind == "bytes" else [(KEY_KIND_HEADER, kind.encode())]


@dataclass
class Changes:
    """What one commit of a reducer writes, a column a field, a row a changed key: its
    changelog record (to the reducer's own partition, with ``header``) and its output record
    (to the partition the key's topic bytes give). Columns, not a tuple a record: a few
    hundred thousand tuples a commit cost Python's garbage collector more than making them."""

    keys: list[bytes] = field(default_factory=list)  # topic bytes
    states: list[bytes] = field(default_factory=list)  # encoded (mrkafka.core.values)
    partitions: list[int] = field(default_factory=list)  # of the output records
    values: list[bytes | None] = field(default_factory=list)  # of the output records
    header: list[tuple[str, bytes]] | None = None
    latencies_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: The changed keys and their new states, as columns (from ``ColumnMerges``), or None:
    #: then the reducer's pending dict holds them.
    columns: tuple[pa.Array, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def changelog(self) -> list[tuple[bytes, bytes, list[tuple[str, bytes]] | None]]:
        """The changelog records, as (key, value, headers)."""
        return [(key, state, self.header) for key, state in zip(self.keys, self.states)]

    @property
    def output(self) -> list[tuple[int, bytes, bytes | None]]:
        """The output records, as (partition, key, value)."""
        return list(zip(self.partitions, self.keys, self.values))

    def last_changelog_digest(self) -> str | None:
        return digest(self.keys[-1], self.states[-1]) if self.keys else None


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
        # Merged since the last commit as columns, while the store holds columns (built-in aggregates).
        self._columns = ColumnMerges(self.aggregation.builtin) if self.aggregation.builtin else None
        self._newest: dict[bytes, int] = {}  # key bytes -> newest input timestamp that changed it

    # -- restore ------------------------------------------------------------------------------

    def restore(self, records: Iterable[Any], end: int) -> int:
        """Apply changelog records to the store, which is then current to offset ``end``.

        Into a store of columns, records of str or bytes keys and int64 states (the built-in
        aggregates') are decoded a column at a time (``unpack_ints``); any other poll record
        by record, where what is not a changelog record of mrkafka's is refused."""
        records = list(records)
        if records and self.store.columnar:
            keys = self._restore_columns(records, end)
            if keys is not None:
                return keys
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

    def _restore_columns(self, records: list[Any], end: int) -> int | None:
        """``restore`` as columns, or None (nothing done) where the records are not all such."""
        header = records[0].headers
        kind = dict(header or ()).get(KEY_KIND_HEADER, b"bytes").decode(errors="replace")
        if kind not in ("str", "bytes") or any(r.headers != header or r.key is None for r in records):
            return None  # an int key's topic bytes are not its key bytes
        states, ok = unpack_ints(pa.array([r.value for r in records], pa.binary()))
        deleted = np.fromiter((r.value is None for r in records), np.bool_, len(records))
        if not (ok | deleted).all():
            return None
        last = records[-1]
        self.kind = kind
        checkpoint = Checkpoint(end, last.offset, digest(last.key, last.value), kind, self.changelog_id)
        keys = pa.array([r.key for r in records], pa.binary())  # str keys' topic bytes are their key bytes
        return self.store.write_columns(keys, states, checkpoint, deleted, distinct=False)

    # -- processing ---------------------------------------------------------------------------

    def merge(self, partial: pa.Table, timestamp: int, where: str = "", values: list[Any] | None = None) -> None:
        """Merge a partial block (its ``values`` decoded, if they are) into the state (held
        apart until ``committed``)."""
        if not partial.num_rows:
            return
        self.kind = key_kind(partial)
        self._input_records += partial.num_rows
        columnar = self._columns is not None and not self._pending and self.store.columnar
        if columnar and foldable(partial):
            self._columns.add(partial, timestamp)
            return
        self._merge_columns_by_record()
        keys = partial.column(KEY).to_pylist()
        self._merge_pairs(keys, decode_values(partial) if values is None else values, timestamp, where)

    def _merge_pairs(self, keys: list[bytes], values: list[Any], timestamp: int, where: str = "") -> None:
        try:
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
            values = decode_values(partial) if holds_objects(partial) else None
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
        now_ms = time.time() * 1000 if now_ms is None else now_ms
        if self._columns:
            merged = self._columns.merged(self.store.lookup)
            if merged is not None:
                return self._column_changes(*merged, now_ms)
            self._merge_columns_by_record()  # a sum beyond int64: Python's integers
        if not self._pending:
            return Changes()
        kind = self.kind or "bytes"
        keys = list(self._pending)
        topic_keys = [topic_bytes(from_key_bytes(k, kind)) for k in keys]
        out_partitions = partition_keys(pa.array(keys, pa.binary()), kind, self.output_partitions).tolist()
        changes = Changes(topic_keys, [], out_partitions, [], _changelog_header(kind))
        for key in keys:
            state = self._pending[key]
            python_key = from_key_bytes(key, kind)
            try:
                changes.states.append(encode_value(state))
            except UnsupportedValue as exc:
                raise JobFailedError(f"reduce made {exc} (key {python_key!r})") from exc
            changes.values.append(self._output_value(python_key, state))
        changes.latencies_ms = now_ms - np.fromiter((self._newest[k] for k in keys), np.float64, len(keys))
        return changes

    def _column_changes(self, keys: pa.Array, states: np.ndarray, newest: np.ndarray, now_ms: float) -> Changes:
        """``changes`` from columns: no Python per key but a job's own ``finish``."""
        kind = self.kind or "bytes"
        topic_keys = topic_bytes_array(keys, kind).to_pylist()
        if self.job.has_finish():
            pairs = zip(keys.to_pylist(), states.tolist())
            values = [self._output_value(from_key_bytes(key, kind), state) for key, state in pairs]
        else:
            values = self.serde.encode_ints(states)
        partitions = partition_keys(keys, kind, self.output_partitions).tolist()
        encoded = pack_ints(states).to_pylist()
        header = _changelog_header(kind)
        return Changes(topic_keys, encoded, partitions, values, header, now_ms - newest, (keys, states))

    def pending_keys(self) -> int:
        """The number of keys merged since the last commit."""
        return len(self._pending) + (self._columns.distinct() if self._columns else 0)

    def _output_value(self, key: Any, state: Any) -> bytes | None:
        """A key's output value: its state through the job's ``finish`` and the output serde."""
        finish = self.job.finish if self.job.has_finish() else None
        try:
            return self.serde.encode(finish(key, state) if finish else state)
        except Exception as exc:
            what = "finish" if finish else "the output serde"
            raise JobFailedError.raised(what, exc, f"key {key!r}") from exc

    def _merge_columns_by_record(self) -> None:
        """Move what ``_columns`` holds into the pending dict, record by record."""
        if self._columns:
            for keys, values, timestamp in self._columns.pairs():
                self._merge_pairs(keys, values, timestamp)
            self._columns.clear()

    def counted(self, changes: Changes) -> Counters:
        """The counts of one commit: the records merged since the last, and ``changes``' output."""
        counters = Counters()
        counters.add(REDUCE_INPUT_RECORDS, self._input_records)
        if changes:
            counters.add(REDUCE_OUTPUT_RECORDS, len(changes))
        if self._bad_records:
            counters.add((self.spec.name, "bad_records"), self._bad_records)
        return counters

    def committed(self, changes: Changes, changelog_last_offset: int | None) -> None:
        """The changes are on the changelog (last at ``changelog_last_offset``) and the input
        position is committed: move them into the store, with the changelog position."""
        if changes and changelog_last_offset is not None:
            checkpoint = Checkpoint(
                changelog_last_offset + 1,
                changelog_last_offset,
                changes.last_changelog_digest(),
                self.kind,
                self.changelog_id,
            )
            if changes.columns is not None:
                self.store.write_columns(*changes.columns, checkpoint)
            else:
                self.store.write(self._pending, checkpoint)
            self.latency.record(changes.latencies_ms)
        self.counters.update(self.counted(changes))
        self.abort()

    def abort(self) -> None:
        """Forget the merges since the last commit, and their counts: their input is read again."""
        self._pending, self._newest, self._input_records, self._bad_records = {}, {}, 0, 0
        if self._columns is not None:
            self._columns.clear()

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
        columns = self.store.table() if self.store.columnar else None
        if columns is not None:
            table = partial_of_ints(columns.column(KEY), columns.column(VALUE), self.kind or "bytes")
        else:
            pairs = list(self.store.items())
            table = Rows([k for k, _ in pairs], [v for _, v in pairs], self.kind or "bytes")
        return finished(table, self.job, f"repartition partition {self.partition}")
