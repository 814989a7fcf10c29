"""The stream engine without a broker: serdes, state stores, Arrow blocks, the mapper's and the
reducer's logic, and the reduce worker's commit protocol with fake Kafka clients."""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import pickle
import signal
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest
from confluent_kafka import KafkaError as RdKafkaError
from confluent_kafka import KafkaException, TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mrkafka.core import MISSING
from mrkafka.core.counters import (
    COMBINE_INPUT_RECORDS,
    COMBINE_OUTPUT_RECORDS,
    MAP_INPUT_RECORDS,
    MAP_OUTPUT_RECORDS,
    REDUCE_INPUT_RECORDS,
    REDUCE_OUTPUT_RECORDS,
    Counters,
)
from mrkafka.core.keys import partition_keys, topic_bytes
from mrkafka.core.partial import Rows, partial_from_ipc, partial_from_pairs, partial_to_ipc
from mrkafka.core.serdes import Serde, deserialize_long, format_value, serialize_long
from mrkafka.core.values import decode as decode_value
from mrkafka.errors import BadInputError, JobFailedError, KafkaError
from mrkafka.job import JobSpec, load_job
from mrkafka.obs.histogram import LatencyHistogram
from mrkafka.settings import StreamSettings
from mrkafka.stream.config import StreamConfig
from mrkafka.stream.reducer import KEY_KIND_HEADER, StreamReducer
from mrkafka.stream.state.stores import Checkpoint, MemoryStore, RocksDBStore, checkpoint_matches, open_store
from mrkafka.stream.tasks import StreamMapper
from mrkafka.stream.workers import session
from tests.helpers import (
    ROOT,
    WORDCOUNT,
    Record,
    held_tasks,
    murmur2,
    oracle_wordcount,
    partial_to_pairs,
    pending,
    process,
    write_job,
)

STORES = {"memory": lambda d: MemoryStore(), "rocksdb": lambda d: RocksDBStore(d)}


def test_long_is_kafkas_long_serializer() -> None:
    assert serialize_long(1) == b"\x00\x00\x00\x00\x00\x00\x00\x01"
    assert serialize_long(-2) == b"\xff\xff\xff\xff\xff\xff\xff\xfe"
    assert deserialize_long(serialize_long(2**63 - 1)) == 2**63 - 1
    assert format_value(serialize_long(-5), "long") == b"-5"


def test_serdes_round_trip_and_tombstones() -> None:
    long, js = Serde("long"), Serde("json")
    assert [long.decode(long.encode(v)) for v in (0, 7, -(2**63))] == [0, 7, -(2**63)]
    assert js.decode(js.encode({"a": [1, "é"]})) == {"a": [1, "é"]}
    assert long.encode(None) is None and long.decode(None) is None
    assert topic_bytes("é") == "é".encode() and topic_bytes(b"\xff") == b"\xff" and topic_bytes(5) == serialize_long(5)
    with pytest.raises(ValueError):
        Serde("avro")


# -- stores ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", STORES)
def test_a_store_applies_changes_and_checkpoint_together(tmp_path: Path, kind: str) -> None:
    store = STORES[kind](tmp_path / "s")
    assert store.checkpoint is None and store.get(b"a") is MISSING
    store.write({b"a": 1, b"b": None}, Checkpoint(5, 4, "d", "str"))
    assert dict(store.items()) == {b"a": 1, b"b": None} and store.checkpoint == Checkpoint(5, 4, "d", "str")
    store.write({b"a": MISSING}, Checkpoint(6))
    assert dict(store.items()) == {b"b": None}
    store.wipe()
    assert store.checkpoint is None and dict(store.items()) == {}
    store.close()


def test_rocksdb_keeps_state_and_checkpoint_across_a_restart(tmp_path: Path) -> None:
    store = RocksDBStore(tmp_path / "s")
    store.write({b"k": (1, "x")}, Checkpoint(42, 41, "abc", "bytes"))
    store.close()
    again = RocksDBStore(tmp_path / "s")
    assert again.checkpoint == Checkpoint(42, 41, "abc", "bytes") and again.get(b"k") == (1, "x")
    again.close()


def test_rocksdb_of_an_older_format_is_wiped_as_it_opens(tmp_path: Path) -> None:
    """An older mrkafka pickled values into RocksDB: such a store is never read, but wiped
    (the restore then reads the changelog from its beginning)."""
    store = RocksDBStore(tmp_path / "s")
    store.close()
    rocksdict = pytest.importorskip("rocksdict")
    options = rocksdict.Options(raw_mode=True)
    db = rocksdict.Rdict(str(tmp_path / "s" / "db"), options, column_families={"meta": options})
    db[b"k"] = pickle.dumps(("state",))
    db.get_column_family("meta")[b"checkpoint"] = json.dumps({"offset": 3}).encode()
    db.close()
    again = RocksDBStore(tmp_path / "s")
    assert again.checkpoint is None and dict(again.items()) == {}
    again.close()


def test_checkpoint_must_belong_to_the_changelog() -> None:
    ours = Checkpoint(10, 9, "abc", "str", "id")
    assert checkpoint_matches(ours, 0, 10, 10, (9, "abc"), "id")
    assert checkpoint_matches(ours, 0, 15, 15, (9, "abc"), "id")  # the changelog went on: read its tail
    assert checkpoint_matches(ours, 0, 15, 15, (12, "zzz"), "id")  # record 9 compacted away (a newer one of its key)
    assert not checkpoint_matches(ours, 0, 8, 8, None, "id")  # the store is ahead of its changelog
    assert not checkpoint_matches(ours, 0, 15, 15, (9, "xyz"), "id")  # a recreated changelog: record 9 is another
    assert not checkpoint_matches(ours, 11, 20, 20, None, "id")  # the changelog was truncated past the store
    assert not checkpoint_matches(ours, 0, 0, 0, None, "id")  # an emptied (reset) changelog
    # A recreated changelog grown past the store, offset 9 a transaction marker there: only its id tells.
    assert not checkpoint_matches(ours, 0, 15, 15, (12, "zzz"), "another id")
    assert not checkpoint_matches(dataclasses.replace(ours, topic_id=None), 0, 15, 15, (12, "zzz"), "id")
    # A transaction left open at offset 5 hides the store's last records from read_committed
    # readers: the store, not past the high watermark, is kept (restoring would come out short).
    assert checkpoint_matches(ours, 0, 5, 10, None, "id")
    assert not checkpoint_matches(ours, 0, 5, 8, None, "id")  # ahead of the high watermark too


# -- blocks ------------------------------------------------------------------------------------


def test_arrow_blocks_round_trip_and_stay_small() -> None:
    keys = [f"word{i}" for i in range(50_000)]
    table = partial_from_pairs(keys, list(range(50_000)))
    blocks = partial_to_ipc(table, 100_000)
    assert len(blocks) > 5 and all(len(b) < 150_000 for b in blocks)
    pairs = [pair for block in blocks for pair in partial_to_pairs(partial_from_ipc(block))]
    assert pairs == list(zip(keys, range(50_000)))
    assert partial_to_ipc(table.slice(0, 0), 100_000) == []


def test_blocks_are_cut_by_real_size_whatever_the_key_lengths() -> None:
    # Short keys first, then keys of 3 KB (real text's URLs and base64): an average-size cut
    # made blocks of many MB here, over Kafka's record limit.
    keys = [b"w%d" % i for i in range(20_000)] + [b"%05d" % i + b"x" * 3000 for i in range(2_000)] + [b"y" * 2_000_000]
    blocks = partial_to_ipc(partial_from_pairs(keys, [1] * len(keys)), 900_000)
    tables = [partial_from_ipc(b) for b in blocks]
    assert all(len(b) <= 910_000 for b, t in zip(blocks, tables) if t.num_rows > 1)
    assert [t.num_rows for t in tables][-1] == 1  # the 2 MB key goes alone
    assert [k for t in tables for k in t.column("key").to_pylist()] == keys


# -- the mapper --------------------------------------------------------------------------------


def _records(lines: list[bytes], keys: list[bytes | None] | None = None, first: int = 0) -> list[Record]:
    keys = keys or [None] * len(lines)
    return [Record(first + i, k, line, 1000 + i) for i, (line, k) in enumerate(zip(lines, keys))]


@pytest.mark.parametrize("vectorize", [True, False])
def test_mapper_combines_per_task_and_drains_blocks_by_partition(vectorize: bool) -> None:
    spec = JobSpec(load_job(WORDCOUNT), vectorize=vectorize)
    mapper = StreamMapper(spec, reducers=3, input_topic="in", block_bytes=200)
    lines = [b"a b a", b"c " * 100, b"\xff d\te", b""]
    process(mapper, 0, _records(lines[:2]))
    process(mapper, 1, _records(lines[2:]))
    process(mapper, 0, _records([b"a"], first=2))
    assert sorted(held_tasks(mapper)) == [0, 1]
    blocks = mapper.drain(0) + mapper.drain(1)
    assert held_tasks(mapper) == [] and mapper.drain(0) == []
    counts: collections.Counter = collections.Counter()
    for block in blocks:
        table = partial_from_ipc(block.data)
        keys = table.column("key")
        assert set(partition_keys(keys, "bytes", 3).tolist()) == {block.partition}
        counts.update(dict(zip(keys.to_pylist(), table.column("value").to_pylist())))
    assert counts == oracle_wordcount(b"\n".join(lines + [b"a"]))


def test_a_job_that_needs_keyed_input_refuses_a_record_without_a_key() -> None:
    mapper = StreamMapper(JobSpec(load_job(ROOT / "jobs" / "cdc_table.py")), reducers=2, input_topic="cdc")
    process(mapper, 0, _records([b"i,1,a"], [b"1"]))
    with pytest.raises(BadInputError, match=r"topic cdc partition 0 offset 1 has no key, and cdc_table needs keyed"):
        process(mapper, 0, _records([b"u,1,b"], [None], first=1))


# -- the reducer -------------------------------------------------------------------------------


def _reducer(spec: JobSpec, store, output_partitions: int = 2, changelog: str = "changelog") -> StreamReducer:
    return StreamReducer(spec, partition=0, output_partitions=output_partitions, store=store, changelog=changelog)


def _commit(reducer: StreamReducer, log: list[Record]) -> None:
    """What the worker does once the changelog acknowledged: append, then ``committed``."""
    changes = reducer.changes(now_ms=5000)
    for key, value, headers in changes.changelog:
        log.append(Record(len(log), key, value, 0, headers))
    reducer.committed(changes, len(log) - 1 if changes.changelog else None)


def test_merges_stay_out_of_the_store_until_committed() -> None:
    store = MemoryStore()
    reducer = _reducer(JobSpec(load_job(WORDCOUNT)), store)
    reducer.merge(partial_from_pairs([b"a", b"b"], [1, 2]), timestamp=100)
    assert dict(store.items()) == {} and pending(reducer) == 2
    reducer.abort()  # a failed write: the interval's merges are dropped, to be read again
    reducer.merge(partial_from_pairs([b"a"], [5]), timestamp=100)
    log: list[Record] = []
    _commit(reducer, log)
    assert dict(store.items()) == {b"a": 5} and store.checkpoint.offset == 1
    assert reducer.latency.total == 1


def _crafted_blocks() -> list[bytes]:
    block = partial_to_ipc(partial_from_pairs([b"a"], [1]), 1 << 20)[0]
    other_kind = partial_to_ipc(partial_from_pairs([7], [1]), 1 << 20)[0]
    not_encoded = partial_from_pairs([b"a"], [(1,)])  # a value column that is not msgpack
    not_encoded = not_encoded.set_column(1, not_encoded.schema.field(1), pa.array([b"\xc1"], pa.binary()))
    return [pickle.dumps(("x",)), b"", block[:-8], other_kind, partial_to_ipc(not_encoded, 1 << 20)[0]]


@pytest.mark.parametrize("n", range(5))
def test_a_block_mrkafka_did_not_write_is_refused_by_its_place(n: int) -> None:
    reducer = _reducer(JobSpec(load_job(WORDCOUNT)), MemoryStore())
    reducer.merge(partial_from_pairs([b"a"], [1]), timestamp=0)
    where = "topic app-repartition partition 0 offset 9"
    with pytest.raises(BadInputError, match=f"^{where} is not a record mrkafka wrote: "):
        reducer.merge_block(_crafted_blocks()[n], 0, where)


def test_under_skip_such_blocks_and_changelog_records_are_counted_and_left_out() -> None:
    spec = JobSpec(load_job(WORDCOUNT), on_error="skip")
    reducer = _reducer(spec, MemoryStore())
    good = partial_to_ipc(partial_from_pairs([b"a", b"b"], [2, 3]), 1 << 20)[0]
    for n, data in enumerate([good, *_crafted_blocks(), good]):
        reducer.merge_block(data, 0, f"offset {n}")
    assert reducer.counters.get((spec.name, "bad_records")) == 0  # counted once committed
    log: list[Record] = []
    _commit(reducer, log)
    assert dict(reducer.store.items()) == {b"a": 4, b"b": 6}
    assert reducer.counters.get((spec.name, "bad_records")) == 5
    crafted = [Record(len(log), b"c", pickle.dumps(1), 0, log[0].headers), Record(len(log) + 1, None, b"\x01")]
    restored = _reducer(spec, MemoryStore())
    restored.restore(log + crafted, len(log) + 2)
    assert dict(restored.store.items()) == {b"a": 4, b"b": 6}
    assert restored.events.get((spec.name, "bad_records")) == 2
    strict = _reducer(JobSpec(load_job(WORDCOUNT)), MemoryStore(), changelog="app-state-changelog")
    with pytest.raises(BadInputError, match=f"^topic app-state-changelog partition 0 offset {len(log)} is not a"):
        strict.restore(log + crafted, len(log) + 2)


def test_counters_count_a_poll_read_again_once() -> None:
    """A poll whose task was dropped (revoked before its commit, or aborted) is read again: it
    counts once, when its commit went through; so do merges a reducer aborted."""
    mapper = StreamMapper(JobSpec(load_job(WORDCOUNT)), reducers=2, input_topic="in")
    poll = [Record(offset, None, b"a b a") for offset in range(10)]
    process(mapper, 0, poll)
    mapper.drop({0})  # revoked
    process(mapper, 0, poll)  # the new owner (here: the same worker) reads it again
    assert mapper.counters.get(MAP_INPUT_RECORDS) == 0  # nothing committed yet
    mapper.drain(0)
    process(mapper, 0, [Record(10, None, b"c")])  # mapped while the drained blocks are committed
    mapper.committed(0)
    assert mapper.counters.get(MAP_INPUT_RECORDS) == 10 and mapper.counters.get(COMBINE_OUTPUT_RECORDS) == 2
    mapper.drop({0})  # revoked before its next commit: the poll held after the drain is read again
    process(mapper, 0, [Record(10, None, b"c")])
    mapper.drain(0)
    mapper.committed(0)
    assert mapper.counters.get(MAP_INPUT_RECORDS) == 11
    reducer = _reducer(JobSpec(load_job(WORDCOUNT)), MemoryStore())
    reducer.merge(partial_from_pairs([b"a", b"b"], [1, 2]), timestamp=100)
    reducer.abort()
    reducer.merge(partial_from_pairs([b"a", b"b"], [1, 2]), timestamp=100)
    _commit(reducer, [])
    assert reducer.counters.get(REDUCE_INPUT_RECORDS) == 2 and reducer.counters.get(REDUCE_OUTPUT_RECORDS) == 2


def test_a_finish_that_raises_writes_nothing(tmp_path: Path) -> None:
    job = write_job(
        tmp_path,
        """
        from mrkafka import Job, StreamOptions
        class Boom(Job):
            stream = StreamOptions(value_serde="long")
            def reduce(self, a, b):
                return a + b
            def finish(self, key, value):
                if key == "bad":
                    raise ValueError("no")
                return value
    """,
    )
    store = MemoryStore()
    reducer = _reducer(JobSpec(load_job(job)), store)
    reducer.merge(partial_from_pairs(["ok", "bad"], [1, 2]), timestamp=0)
    with pytest.raises(JobFailedError, match=r"finish raised ValueError: no \(key 'bad'\)"):
        reducer.changes()
    assert dict(store.items()) == {} and store.checkpoint is None


def test_int_keys_are_longs_on_topics_and_partitioned_as_kafka_does() -> None:
    # Kafka's producer puts LongSerializer key 10 in partition murmur2(long bytes) % 2 = 1
    # (the decimal text "10" would give 0): the output and changelog must agree with it.
    assert (murmur2(serialize_long(10)) & 0x7FFFFFFF) % 2 == 1
    job = JobSpec(load_job(ROOT / "jobs" / "cdc_table.py"))
    reducer = _reducer(job, MemoryStore())
    reducer.merge(partial_from_pairs([10, -3], [(0, "i", "x"), (1, "i", "y")]), timestamp=0)
    changes = reducer.changes()
    assert [(p, k) for p, k, _ in changes.output] == [
        (1, serialize_long(10)),
        ((murmur2(serialize_long(-3)) & 0x7FFFFFFF) % 2, serialize_long(-3)),
    ]
    assert [k for k, _, _ in changes.changelog] == [serialize_long(10), serialize_long(-3)]
    assert all(dict(h)[KEY_KIND_HEADER] == b"int" for _, _, h in changes.changelog)


_PICKLABLE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.frozensets(st.integers() | st.text(), max_size=4)
        | st.dictionaries(st.integers() | st.text() | st.tuples(st.integers()), inner, max_size=4)
    ),
    max_leaves=12,
)
_KEYS = {
    "str": st.text(min_size=0, max_size=8),
    "bytes": st.binary(max_size=8),
    "int": st.integers(-(2**63), 2**63 - 1),
}


@pytest.mark.parametrize("store_kind", STORES)
@pytest.mark.parametrize("key_kind", _KEYS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_restored_state_equals_the_state_before_the_restart(tmp_path_factory, store_kind, key_kind, data) -> None:
    # A job whose state is any picklable value (reduce keeps the newest).
    spec = JobSpec(load_job(write_job(tmp_path_factory.mktemp("job"), _LAST_JOB)))
    pairs = data.draw(st.dictionaries(_KEYS[key_kind], _PICKLABLE, min_size=1, max_size=6))
    directory = tmp_path_factory.mktemp("store")
    reducer = _reducer(spec, STORES[store_kind](directory / "a"))
    reducer.merge(partial_from_pairs(list(pairs), list(pairs.values())), timestamp=0)
    log: list[Record] = []
    _commit(reducer, log)
    before = dict(reducer.store.items())
    restored = _reducer(spec, STORES[store_kind](directory / "b"))
    restored.restore(log, len(log))
    after = dict(restored.store.items())
    assert _exact(after) == _exact(before)
    assert restored.kind == key_kind == reducer.kind
    # Part files sort by key bytes: an int by its decimal text, a str by its UTF-8.
    by_key_bytes = sorted(pairs, key=lambda k: k if isinstance(k, bytes) else str(k).encode("utf-8", "surrogateescape"))
    assert [k for k, _ in partial_to_pairs(restored.final_rows().table())] == by_key_bytes
    reducer.store.close()
    restored.store.close()


def _exact(value):
    """A form of ``value`` equal to another's only if both are the same value of the same types
    (``==`` alone takes {True} for {1} and 0.0 for -0.0)."""
    if isinstance(value, dict):
        return ("dict", sorted((repr(_exact(k)), _exact(v)) for k, v in value.items()))
    if isinstance(value, (set, frozenset)):
        return (type(value).__name__, sorted(repr(_exact(v)) for v in value))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [_exact(v) for v in value])
    return (type(value).__name__, repr(value))


_LAST_JOB = """
from mrkafka import Job
class Last(Job):
    def reduce(self, a, b):
        return b
    def finish(self, key, value):  # the state is any value; the JSON output topic gets its repr
        return repr(value)
"""


# -- the latency histogram --------------------------------------------------------------------


def test_latency_histogram_has_a_fixed_size_and_close_percentiles() -> None:
    histogram = LatencyHistogram()
    size = histogram.counts.nbytes
    samples = np.random.default_rng(1).lognormal(6, 1.5, 200_000)
    for chunk in np.array_split(samples, 20):
        histogram.record(chunk)
    assert histogram.counts.nbytes == size and histogram.total == len(samples)
    for q in (50, 99):
        assert math.isclose(histogram.percentile(q), np.percentile(samples, q), rel_tol=0.07)
    other = LatencyHistogram()
    other.record(np.array([1e9]))
    histogram.merge(other)
    assert histogram.total == len(samples) + 1 and LatencyHistogram().percentile(50) is None


# -- the workers' commits, with fake librdkafka clients -------------------------------------------


class _Message:
    """A consumed message, as librdkafka's ``Message`` answers."""

    def __init__(self, partition: int, offset: int, value: bytes) -> None:
        self._partition, self._offset, self._value = partition, offset, value

    def error(self) -> None:
        return None

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> None:
        return None

    def value(self) -> bytes:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return (1, 1000 + self._offset)

    def headers(self) -> None:
        return None


def test_a_poll_is_read_as_columns_per_partition() -> None:
    from mrkafka.kafka.records import Polled, polls

    # Two partitions' runs interleaved, as a consume over both gives them.
    messages = [_Message(p, o, b"v%d" % o) for p, o in [(0, 0), (1, 5), (1, 6), (0, 1), (0, 3), (1, 7)]]
    by_partition = polls(messages)

    def columns(polled: Polled) -> tuple:
        return polled.offsets, polled.keys, polled.values, polled.newest_timestamp

    assert {p: columns(polled) for p, polled in by_partition.items()} == {
        0: ([0, 1, 3], [None] * 3, [b"v0", b"v1", b"v3"], 1003),
        1: ([5, 6, 7], [None] * 3, [b"v5", b"v6", b"v7"], 1007),
    }
    alone = polls([m for m in messages if m.partition() == 1])  # one partition's poll, as is
    assert {p: columns(polled) for p, polled in alone.items()} == {1: columns(by_partition[1])}
    assert polls([]) == {}
    polled = by_partition[0]  # offset 2 is a gap (a transaction marker, a compacted record)
    assert [polled.before(o) for o in range(5)] == [sum(x < o for x in polled.offsets) for o in range(5)]
    assert [polled.through(o) for o in range(5)] == [sum(x <= o for x in polled.offsets) for o in range(5)]
    assert columns(polled.cut(1, 3)) == ([1, 3], [None, None], [b"v1", b"v3"], 1003)
    assert (polled.first_offset, polled.last_offset, len(polled), len(polled.cut(3))) == (0, 3, 3, 0)
    records = [Record(o, b"k", b"v", 7 * o) for o in (4, 9)]
    assert columns(Polled.of(records)) == ([4, 9], [b"k", b"k"], [b"v", b"v"], 63)
    failed = _Message(0, 4, b"x")
    failed.error = lambda: RdKafkaError(RdKafkaError._UNKNOWN_PARTITION)
    with pytest.raises(KafkaException, match="UNKNOWN_PARTITION"):
        polls([*messages, failed])


class _Delivered:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self._where = (topic, partition, offset)

    def topic(self) -> str:
        return self._where[0]

    def partition(self) -> int:
        return self._where[1]

    def offset(self) -> int:
        return self._where[2]


class _FakeRdProducer:
    """A transactional librdkafka producer's calls, recorded: what a read_committed reader of
    its topics and of the group's offsets would see. A failing one delivers nothing."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list = []
        self._next: dict = {}
        self._unacknowledged: list = []
        self.pending, self.pending_offsets = [], {}  # in the open transaction
        self.committed, self.committed_offsets = [], {}
        self.metadata = {}  # what the committed offsets carry, by (topic, partition), as a 1-tuple

    def produce(self, topic, value, key, partition, callback, on_delivery=None, timestamp=0, headers=None) -> None:
        """librdkafka's positional order: ``callback`` and ``on_delivery`` are one argument's two names."""
        on_delivery = callback or on_delivery
        self.calls.append(("send", topic, partition))
        offset = self._next.get((topic, partition), 0)
        self._next[(topic, partition)] = offset + 1
        self._unacknowledged.append((on_delivery, _Delivered(topic, partition, offset)))
        self.pending.append(value)

    def flush(self, timeout: float) -> int:
        for on_delivery, delivered in self._unacknowledged:
            if on_delivery is not None:  # the others fail the transaction's commit
                on_delivery(RdKafkaError(RdKafkaError._MSG_TIMED_OUT) if self.fail else None, delivered)
        self._unacknowledged = []
        return 0

    def poll(self, timeout: float) -> int:
        return 0

    def begin_transaction(self) -> None:
        self.calls.append(("begin",))

    def send_offsets_to_transaction(self, offsets, metadata, timeout) -> None:
        self.calls.append(("offsets", {(tp.topic, tp.partition): tp.offset for tp in offsets}, metadata))
        self.pending_offsets.update({(tp.topic, tp.partition): (tp.offset, tp.metadata) for tp in offsets})

    def commit_transaction(self, timeout) -> None:
        if self.fail:
            raise KafkaException(RdKafkaError(RdKafkaError._MSG_TIMED_OUT, txn_requires_abort=True))
        self.calls.append(("commit",))
        self.committed += self.pending
        self.committed_offsets.update({tp: offset for tp, (offset, _) in self.pending_offsets.items()})
        self.metadata.update({tp: (metadata,) for tp, (_, metadata) in self.pending_offsets.items()})
        self.pending, self.pending_offsets = [], {}

    def abort_transaction(self, timeout) -> None:
        self.calls.append(("abort",))
        self.pending, self.pending_offsets = [], {}

    def purge(self) -> None:
        self.pending = []


class _FakeConsumer:
    """A reducer's consumer: no member of group APP-reducers, it commits only when told."""

    def __init__(self) -> None:
        self.commits: list = []

    def commit(self, offsets, asynchronous: bool) -> None:
        self.commits.append({(tp.topic, tp.partition): tp.offset for tp in offsets})

    def consumer_group_metadata(self) -> str:
        return "app-reducers, no member"


def _reduce_worker(tmp_path: Path, state: str, guarantee: str, producer: _FakeRdProducer):
    from mrkafka.kafka.outbox import Outbox
    from mrkafka.settings import EXACTLY_ONCE
    from mrkafka.stream.workers import ReduceWorker

    settings = StreamSettings(
        application_id="app",
        bootstrap="unused:1",
        input_topic="in",
        output_topic="out",
        reducers=1,
        state=state,
        state_dir=str(tmp_path),
        guarantee=guarantee,
    )
    config = StreamConfig.of(JobSpec(load_job(WORDCOUNT)), settings, output_partitions=2)
    worker = ReduceWorker(config, 0)
    worker._last_purge = float("inf")
    return worker, Outbox(producer, guarantee == EXACTLY_ONCE, timeout=5.0)


@pytest.mark.parametrize("exactly_once", [True, False])
def test_within_a_transaction_only_each_partitions_last_record_asks_for_its_report(exactly_once: bool) -> None:
    from mrkafka.kafka.outbox import Outbox

    producer = _FakeRdProducer()
    outbox = Outbox(producer, exactly_once, timeout=5.0)
    outbox.append_all("t", [0, 0, 1, 0], [b"a", b"b", b"c", b"d"], [b"1", b"2", b"3", b"4"])
    asked = [on_delivery is not None for on_delivery, _ in producer._unacknowledged]
    assert asked == ([False, False, True, True] if exactly_once else [True] * 4)
    assert outbox.flush() == {("t", 0): 2, ("t", 1): 0}  # each partition's last offset, either way


@pytest.mark.parametrize("guarantee", ["exactly-once", "at-least-once"])
@pytest.mark.parametrize("state", ["memory", "rocksdb"])
def test_a_failed_write_commits_neither_offset_nor_state(tmp_path: Path, state: str, guarantee: str) -> None:
    consumer, tp = _FakeConsumer(), TopicPartition("app-repartition", 0)
    producer = _FakeRdProducer(fail=True)
    worker, outbox = _reduce_worker(tmp_path, state, guarantee, producer)
    worker.reducer.merge(partial_from_pairs([b"a"], [1]), timestamp=0)
    worker._position, worker._committed = 7, 3
    with pytest.raises(KafkaException, match="_MSG_TIMED_OUT"):
        worker._commit(consumer, tp, outbox)
    assert consumer.commits == [] and ("commit",) not in producer.calls
    assert not [call for call in producer.calls if call[0] == "offsets"]
    assert dict(worker.reducer.store.items()) == {} and worker.reducer.store.checkpoint is None
    assert worker._committed == 3
    worker._abort()  # what the session's end does: the merges are read again from offset 3
    worker.reducer.store.close()

    producer = _FakeRdProducer(fail=False)
    worker, outbox = _reduce_worker(tmp_path, state, guarantee, producer)
    worker.reducer.merge(partial_from_pairs([b"a"], [1]), timestamp=0)
    worker._position, worker._committed = 7, 3
    worker._commit(consumer, tp, outbox)
    sends = [("send", worker.config.changelog_topic, 0), ("send", "out", (murmur2(b"a") & 0x7FFFFFFF) % 2)]
    if guarantee == "exactly-once":  # one transaction: the records, then the position, then the commit
        assert consumer.commits == []
        assert sorted(producer.calls[1:3]) == sorted(sends)
        assert producer.calls[0] == ("begin",) and producer.calls[3:] == [
            ("offsets", {("app-repartition", 0): 7}, "app-reducers, no member"),
            ("commit",),
        ]
    else:  # the records, acknowledged, then the offset commit
        assert sorted(producer.calls) == sorted(sends) and consumer.commits == [{("app-repartition", 0): 7}]
    assert dict(worker.reducer.store.items()) == {b"a": 1} and worker.reducer.store.checkpoint.offset == 1
    worker.reducer.store.close()


class _RefusingAdmin:
    def delete_records(self, topic: str, partition: int, before: int) -> None:
        # a new leader whose high watermark is still behind
        raise KafkaError("cannot delete records of topic app-repartition: Broker: Offset out of range")


def test_a_refused_purge_does_not_fail_the_commit(tmp_path: Path) -> None:
    consumer, tp = _FakeConsumer(), TopicPartition("app-repartition", 0)
    worker, outbox = _reduce_worker(tmp_path, "memory", "at-least-once", _FakeRdProducer(fail=False))
    worker._admin = _RefusingAdmin()
    worker.reducer.merge(partial_from_pairs([b"a"], [1]), timestamp=0)
    worker._position, worker._committed = 4, 0
    worker._commit(consumer, tp, outbox, purge=True)
    assert consumer.commits == [{("app-repartition", 0): 4}] and dict(worker.reducer.store.items()) == {b"a": 1}


# -- the fault hook -----------------------------------------------------------------------------


def test_a_fault_point_acts_once_at_its_nth_pass(tmp_path: Path) -> None:
    import subprocess
    import sys

    flag = tmp_path / "fired"
    script = (
        "from mrkafka.obs import faults\nfor i in range(5):\n    faults.point('restore')\n    print(i, flush=True)\n"
    )
    env = {"MRKAFKA_FAULT": "restore:3", "MRKAFKA_FAULT_ONCE": str(flag), "PATH": "/usr/bin:/bin"}
    first = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=ROOT)
    assert first.returncode == -9 and first.stdout.split() == ["0", "1"]  # SIGKILLed at the 3rd pass
    assert int(flag.read_text()) > 0  # the pid of the process it killed
    again = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=ROOT)
    assert again.returncode == 0 and again.stdout.split() == ["0", "1", "2", "3", "4"]  # once per flag


def test_a_fault_spec_that_names_no_point_is_refused() -> None:
    from mrkafka.obs.faults import _parse

    assert _parse("finish:2:stop") == ("finish", 2, signal.SIGSTOP)
    for bad in ("finsh:1", "finish:0", "finish:x", "finish:1:pause"):
        with pytest.raises(ValueError, match="expected POINT:N"):
            _parse(bad)


def test_librdkafka_errors_are_classified_as_kafka_streams_does() -> None:
    from mrkafka.kafka.client import FATAL, MIGRATED, RETRIABLE, classify

    def error(code: int, **flags: bool) -> KafkaException:
        return KafkaException(RdKafkaError(code, **flags))

    # Fenced, or out of the group: the tasks moved on.
    assert classify(error(RdKafkaError.PRODUCER_FENCED, fatal=True)) == MIGRATED
    assert classify(error(RdKafkaError.ILLEGAL_GENERATION, txn_requires_abort=True)) == MIGRATED
    # Away for a while, or a producer that a new one replaces: a new session.
    assert classify(error(RdKafkaError._TRANSPORT)) == RETRIABLE
    assert classify(error(RdKafkaError._MSG_TIMED_OUT)) == RETRIABLE
    assert classify(error(RdKafkaError.NOT_ENOUGH_REPLICAS, retriable=True)) == RETRIABLE
    assert classify(error(RdKafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, fatal=True)) == RETRIABLE
    # No retry helps.
    assert classify(error(RdKafkaError.TOPIC_AUTHORIZATION_FAILED)) == FATAL
    assert classify(error(RdKafkaError.MSG_SIZE_TOO_LARGE)) == FATAL


# -- the map worker's commits and rebalances, with fake librdkafka clients -----------------------


class _FakeGroupConsumer:
    """Group APP's consumer of a map worker: it returns each assigned partition's lines from
    its position on, and starts a newly assigned partition at its committed offset."""

    def __init__(self, producer: _FakeRdProducer, lines: dict[int, list[bytes]]) -> None:
        self.producer, self.lines = producer, lines
        self.positions: dict[int, int] = {}

    def assign(self, worker, partitions: list[int]) -> None:
        for p in partitions:
            self.positions[p] = self.producer.committed_offsets.get(("in", p), 0)
        worker._assigned(self, [TopicPartition("in", p) for p in partitions])

    def revoke(self, worker, partitions: list[int]) -> None:
        worker._revoked(self, [TopicPartition("in", p) for p in partitions])
        for p in partitions:
            del self.positions[p]

    def consume(self) -> list[_Message]:
        messages = []
        for p, position in self.positions.items():
            messages += [_Message(p, o, line) for o, line in enumerate(self.lines[p]) if o >= position]
            self.positions[p] = len(self.lines[p])
        return messages

    def consumer_group_metadata(self) -> str:
        return "generation-1"

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        found = [(tp.topic, tp.partition) for tp in partitions]
        offsets, metadata = self.producer.committed_offsets, self.producer.metadata
        # A partition never committed has no metadata (None).
        return [TopicPartition(t, p, offsets.get((t, p), -1001), *metadata.get((t, p), ())) for t, p in found]


def _map_worker(reducers: int, producer: _FakeRdProducer | None = None) -> tuple:
    """A map worker whose producer is ``producer`` (a new one if None) as its session has it."""
    from mrkafka.kafka.outbox import Outbox
    from mrkafka.stream.workers import MapWorker

    config = StreamConfig.of(JobSpec(load_job(WORDCOUNT)), _settings(reducers), output_partitions=2)
    worker = MapWorker(config, 0)
    producer = producer or _FakeRdProducer()
    worker._outbox = Outbox(producer, exactly_once=True, timeout=5.0)
    return worker, producer


def _committed_counts(values: list) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for value in values:
        if value is not None:
            table = partial_from_ipc(value)
            counts.update(dict(zip(table.column("key").to_pylist(), table.column("value").to_pylist())))
    return counts


def test_a_revocation_commits_every_task_in_one_transaction_and_nothing_is_counted_twice() -> None:
    # Exactly-once v2: one producer per worker, one transaction per commit holding every
    # task's blocks and offsets, with the consumer's group metadata (the generation fences).
    worker, producer = _map_worker(reducers=2)
    lines = {0: [b"a b", b"c"], 1: [b"a a", b"d e"]}
    consumer = _FakeGroupConsumer(producer, lines)
    worker._consumer = consumer
    consumer.assign(worker, [0, 1])
    worker._process(consumer, consumer.consume())
    consumer.revoke(worker, [1])  # another worker joined: partition 1 moves
    assert producer.calls.count(("commit",)) == 1
    assert producer.calls[-2] == ("offsets", {("in", 0): 2, ("in", 1): 2}, "generation-1")
    lines[0].append(b"f")
    lines[1].append(b"g a")
    consumer.assign(worker, [1])  # it comes back, from its committed offset
    worker._process(consumer, consumer.consume())
    worker._commit()
    assert producer.calls.count(("commit",)) == 2 and producer.calls.count(("begin",)) == 2
    assert producer.committed_offsets == {("in", 0): 3, ("in", 1): 3}
    assert _committed_counts(producer.committed) == oracle_wordcount(b"\n".join(lines[0] + lines[1]))


def test_the_counts_of_the_input_are_committed_with_its_offsets_and_outlive_the_worker() -> None:
    # A worker commits, with each input offset, the counts of the partition's input up to it
    # (the offset's metadata): a worker that dies takes nothing committed with it, its
    # successor goes on from those counts, and a poll read but not committed counts once.
    lines = {0: [b"a b", b"c"], 1: [b"a a", b"d e f"]}
    first, producer = _map_worker(reducers=2)
    consumer = _FakeGroupConsumer(producer, lines)
    first._consumer = consumer
    consumer.assign(first, [0, 1])
    first._process(consumer, consumer.consume())
    first._commit()
    lines[0].append(b"g")
    lines[1].append(b"h i a")
    first._process(consumer, consumer.consume())  # read, and the process dies before its commit
    second, _ = _map_worker(reducers=2, producer=producer)
    consumer = _FakeGroupConsumer(producer, lines)
    second._consumer = consumer
    consumer.assign(second, [0, 1])
    second._process(consumer, consumer.consume())
    second._commit()
    counts = Counters()
    for partition in (0, 1):
        counts.update(Counters.from_text(*producer.metadata[("in", partition)]))
    everything = [line for partition in (0, 1) for line in lines[partition]]
    assert counts.get(MAP_INPUT_RECORDS) == len(everything) == 6
    assert counts.get(("wordcount", "words")) == len(b" ".join(everything).split())  # the job's own counter
    assert counts.get(MAP_OUTPUT_RECORDS) == counts.get(COMBINE_INPUT_RECORDS) == 11  # distinct words per poll
    produced_rows = sum(partial_from_ipc(value).num_rows for value in producer.committed if value is not None)
    assert counts.get(COMBINE_OUTPUT_RECORDS) == produced_rows
    assert second.mapper.counters.get(MAP_INPUT_RECORDS) == 2  # the instance's own: what it committed


def test_an_idle_map_worker_commits_an_empty_transaction_that_reducers_skip(tmp_path: Path) -> None:
    # Kafka 4.3 can leave a committed transaction without markers around a lone broker's
    # restart (KAFKA-20734); only the same producer's next transaction over the same partitions
    # closes it. An idle worker writes one every IDLE_COMMIT_S: an empty record to every
    # repartition partition and its tasks' last offsets again.
    from mrkafka.stream import workers
    from mrkafka.stream.workers import map_worker

    worker, producer = _map_worker(reducers=3)
    consumer = _FakeGroupConsumer(producer, {0: [b"a b", b"a"]})
    worker._consumer = consumer
    consumer.assign(worker, [0])
    worker._process(consumer, consumer.consume())
    worker._commit()
    worker._commit()  # idle, but not for long: nothing
    data = list(producer.committed)
    assert producer.committed_offsets == {("in", 0): 2} and producer.calls.count(("commit",)) == 1
    worker._outbox.committed_at -= map_worker.IDLE_COMMIT_S
    worker._commit()  # idle for IDLE_COMMIT_S
    assert producer.calls.count(("commit",)) == 2 and producer.calls[-2] == ("offsets", {("in", 0): 2}, "generation-1")
    assert producer.committed[len(data) :] == [None, None, None]
    sends = [call for call in producer.calls if call[0] == "send"][-3:]
    assert sorted(partition for _, _, partition in sends) == [0, 1, 2]

    config = worker.config
    reducer = workers.ReduceWorker(
        dataclasses.replace(config, settings=dataclasses.replace(config.settings, state_dir=str(tmp_path))), 0
    )
    keep_alive, block = [value for value in producer.committed if value is None][:1], producer.committed[:1]
    for values, merged in ((keep_alive, 0), (block, 1)):
        reducer._merge([SimpleNamespace(topic="r", partition=0, offset=0, value=v, timestamp=0) for v in values])
        assert pending(reducer.reducer) == merged


def test_a_lost_assignment_drops_what_the_worker_held_and_ends_its_session() -> None:
    from mrkafka.kafka.client import MIGRATED, TaskMigrated, classify

    worker, producer = _map_worker(reducers=2)
    consumer = _FakeGroupConsumer(producer, {0: [b"a b"], 1: [b"c"]})
    worker._consumer = consumer
    consumer.assign(worker, [0, 1])
    worker._process(consumer, consumer.consume())
    with pytest.raises(TaskMigrated) as lost:
        worker._lost(consumer, [TopicPartition("in", 0), TopicPartition("in", 1)])
    assert classify(lost.value) == MIGRATED
    assert worker.mapper.held_records == 0 and not worker._positions and not worker._tasks
    assert not [call for call in producer.calls if call[0] in ("send", "commit")]


def _settings(reducers: int) -> StreamSettings:
    return StreamSettings(
        application_id="app", bootstrap="unused:1", input_topic="in", output_topic="out", reducers=reducers
    )


class _Clocks:
    """The wall and monotonic clocks, moved by hand."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, wall: float) -> None:
        self.wall, self.mono = wall, 50.0
        monkeypatch.setattr(session.time, "time", lambda: self.wall)
        monkeypatch.setattr(session.time, "monotonic", lambda: self.mono)

    def advance(self, seconds: float, wall_step: float = 0.0) -> None:
        self.wall, self.mono = self.wall + seconds + wall_step, self.mono + seconds


@pytest.mark.parametrize(("phase", "first_due"), [(0.0, 1001.0), (0.5, 1000.5)])
def test_commits_fall_on_the_intervals_ticks_reducers_half_an_interval_after_map_workers(
    monkeypatch, phase, first_due
) -> None:
    clocks = _Clocks(monkeypatch, wall=1000.37)
    clock = session.CommitClock(1.0, phase)
    assert clock.poll_s() == 0.1 and clock.poll_s(10.0) == pytest.approx(first_due - 1000.37)
    clocks.advance(first_due - 1000.37 - 0.01)
    assert not clock.due() and clock.poll_s() == pytest.approx(0.01)
    clocks.advance(0.01)
    assert clock.due() and clock.poll_s() == 0.0
    clocks.advance(0.2)  # the commit's own time
    clock.committed()
    clocks.advance(0.799)
    assert not clock.due()
    clocks.advance(0.001)  # the next tick, an interval after the last
    assert clock.due()
    clocks.advance(2.3)  # a commit that outlasts two intervals
    clock.committed()  # at first_due + 3.3: the ticks it overran are skipped
    assert not clock.due()
    clocks.advance(0.69)
    assert not clock.due()
    clocks.advance(0.01)
    assert clock.due()


def test_a_wall_clock_stepped_back_delays_a_commit_by_an_interval_at_most(monkeypatch) -> None:
    clocks = _Clocks(monkeypatch, wall=1000.0)
    clock = session.CommitClock(1.0)
    clocks.advance(0.99, wall_step=-3599.75)
    assert not clock.due()
    clocks.advance(0.01)  # an interval by the monotonic clock
    assert clock.due()
    clock.committed()  # at -2598.75 by the new wall clock: its next tick is -2598.0
    assert clock.poll_s(10.0) == pytest.approx(0.75)


def test_a_bounded_runs_bar_counts_input_records_committed_within_its_bounds() -> None:
    from mrkafka.stream.progress import BoundedProgress

    progress = BoundedProgress(begin={0: 10, 1: 0}, bounds={0: 110, 1: 50}, reducers=[], enabled=False)
    assert progress.total == 150
    progress.committed({})  # nothing committed yet: partitions start at their beginnings
    assert progress.done == 0
    progress.committed({0: 60, 1: 80})  # partition 1 past its bound (input that came after the start)
    assert progress.done == 100
    progress.committed({0: 40})  # an older answer never moves the bar back
    assert progress.done == 100
    progress.close()


def test_counters_travel_as_text_that_fits_an_offsets_metadata_and_nothing_else_is_read() -> None:
    counters = Counters({"Map-Reduce Framework": {"Map input records": 7}, "wordcount": {"words": 12}})
    assert Counters.from_text(counters.to_text(4096)).as_dict() == counters.as_dict()
    for foreign in (None, "", "not json", "[1, 2]", '{"g": {"n": "7"}}', '{"g": 3}', '{"g": {"n": true}}'):
        assert Counters.from_text(foreign).as_dict() == {}  # another client's metadata counts nothing
    counters.update((("wordcount", f"counter {n}"), n) for n in range(300))
    text = counters.to_text(4096)
    assert len(text) <= 4096
    assert Counters.from_text(text).as_dict() == {"Map-Reduce Framework": {"Map input records": 7}}


@pytest.mark.parametrize("backend", ["memory", "rocksdb"])
@pytest.mark.parametrize("aggregate", ["sum", "min", "max", "last"])
def test_columnar_state_equals_pythons_merge_and_survives_a_sum_beyond_int64(aggregate, backend, tmp_path) -> None:
    """A built-in aggregate merges as columns; the job's own reduce (the Python oracle here:
    AGGREGATES over Python ints) gives the same states, also where a sum outgrows int64 (a
    memory store then holds Python values; RocksDB keeps merging the keys around such a
    state as columns, and those by record)."""
    from mrkafka.job import AGGREGATES

    job = type("Agg", (load_job(WORDCOUNT),), {"aggregate": aggregate})
    reducer = _reducer(JobSpec(job), open_store(backend, tmp_path))
    expected: dict[bytes, int] = {}
    log: list[Record] = []
    big = 2**62
    for commit in range(4):
        for block in range(3):
            keys = [b"k%d" % ((commit * 7 + block * 3 + i) % 11) for i in range(9)]
            values = [big if commit == 3 and i == 0 else commit * 10 - block * i for i in range(9)]
            for key, value in zip(keys, values):
                expected[key] = AGGREGATES[aggregate](expected[key], value) if key in expected else value
            reducer.merge(partial_from_pairs(keys, values), timestamp=commit)
        columnar = reducer.store.columnar
        _commit(reducer, log)
        assert dict(reducer.store.items()) == expected
        assert {r.key: decode_value(r.value) for r in log} == expected  # the changelog holds the same
        if commit < 3:
            assert columnar
    assert reducer.store.columnar == (aggregate != "sum" or max(expected.values()) < 2**63 or backend == "rocksdb")
    rows = reducer.final_rows()
    rows = rows if isinstance(rows, Rows) else Rows.of(rows)
    assert list(zip(rows.keys, rows.values)) == sorted(expected.items())  # a bounded run's part, sorted


_STATES = st.one_of(st.integers(-(2**63), 2**63 - 1), st.none(), st.integers(2**63, 2**70), st.floats(allow_nan=False))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.sampled_from([b"a", b"b", b"\xff", b"long" * 9]), _STATES), max_size=30), max_size=6
    ),
    st.sampled_from(["str", "bytes", None]),
)
def test_a_restore_leaves_each_keys_last_changelog_state(polls, kind) -> None:
    """Polls of int64 states restore as columns, others (a big int, a float) record by record;
    either way the store holds each key's last state, a tombstone (None) deleting it. A kind
    of None: bytes keys without the header, as they are written now."""
    with tempfile.TemporaryDirectory() as scratch:
        for store in (MemoryStore(), RocksDBStore(Path(scratch))):
            _restore_polls(polls, kind, store)
            store.close()


def _restore_polls(polls, kind, store) -> None:
    from mrkafka.core.values import encode

    reducer = _reducer(JobSpec(load_job(WORDCOUNT)), store)
    expected: dict[bytes, object] = {}
    offset = 0
    for poll in polls:
        records = []
        for key, state in poll:
            value = None if state is None else encode(state)
            records.append(Record(offset, key, value, 0, kind and [(KEY_KIND_HEADER, kind.encode())]))
            offset += 1
            if state is None:
                expected.pop(key, None)
            else:
                expected[key] = state
        reducer.restore(records, offset)
        assert dict(reducer.store.items()) == expected
        assert reducer.store.checkpoint.offset == offset
        if records:
            assert reducer.store.checkpoint.last_offset == offset - 1
    # Columns until a poll leaves a key a state that is not an int64.
    lasts = [v for poll in polls for v in dict(poll).values() if v is not None]
    assert reducer.store.columnar == (
        isinstance(store, RocksDBStore) or all(type(v) is int and v < 2**63 for v in lasts)
    )
    if isinstance(store, RocksDBStore):  # a memory store of Python values stays so
        assert (store.table() is not None) == all(type(v) is int and v < 2**63 for v in expected.values())
