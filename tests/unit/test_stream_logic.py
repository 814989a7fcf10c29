"""The stream engine without a broker: serdes, state stores, Arrow blocks, the mapper's and the
reducer's logic, and the reduce worker's commit protocol with fake Kafka clients."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import math
import pickle
import signal
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest
from aiokafka import TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mrkafka.core import MISSING
from mrkafka.core.counters import COMBINE_OUTPUT_RECORDS, MAP_INPUT_RECORDS, REDUCE_INPUT_RECORDS, REDUCE_OUTPUT_RECORDS
from mrkafka.core.keys import partition_keys, topic_bytes
from mrkafka.core.partial import partial_from_ipc, partial_from_pairs, partial_to_ipc
from mrkafka.core.serdes import Serde, deserialize_long, format_value, serialize_long
from mrkafka.errors import BadInputError, JobFailedError
from mrkafka.job import JobSpec, load_job
from mrkafka.obs.histogram import LatencyHistogram
from mrkafka.settings import StreamSettings
from mrkafka.stream.config import StreamConfig
from mrkafka.stream.state.stores import Checkpoint, MemoryStore, RocksDBStore
from mrkafka.stream.tasks import KEY_KIND_HEADER, StreamMapper, StreamReducer, checkpoint_matches
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
    assert checkpoint_matches(ours, 0, 10, (9, "abc"), "id")
    assert checkpoint_matches(ours, 0, 15, (9, "abc"), "id")  # the changelog went on: read its tail
    assert checkpoint_matches(ours, 0, 15, (12, "zzz"), "id")  # record 9 compacted away (a newer one of its key)
    assert not checkpoint_matches(ours, 0, 8, None, "id")  # the store is ahead of its changelog
    assert not checkpoint_matches(ours, 0, 15, (9, "xyz"), "id")  # a recreated changelog: record 9 is another
    assert not checkpoint_matches(ours, 11, 20, None, "id")  # the changelog was truncated past the store
    assert not checkpoint_matches(ours, 0, 0, None, "id")  # an emptied (reset) changelog
    # A recreated changelog grown past the store, offset 9 a transaction marker there: only its id tells.
    assert not checkpoint_matches(ours, 0, 15, (12, "zzz"), "another id")
    assert not checkpoint_matches(dataclasses.replace(ours, topic_id=None), 0, 15, (12, "zzz"), "id")


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
    assert restored.counters.get((spec.name, "bad_records")) == 2
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


# -- the reduce worker's commit, with fake clients ---------------------------------------------


class _FakeBatch:
    def __init__(self) -> None:
        self.count, self.values = 0, []

    def append(self, key, value, timestamp, headers) -> object:
        self.count += 1
        self.values.append(value)
        return object()

    def record_count(self) -> int:
        return self.count


class _FakeProducer:
    """Records what a task's producer is asked to do; a failing one never acknowledges a batch."""

    def __init__(self, fail: bool = False) -> None:
        self.fail, self.calls, self._next = fail, [], {}
        self.pending, self.pending_offsets = [], {}  # in the open transaction
        self.committed, self.committed_offsets = [], {}  # what a read_committed reader sees

    def create_batch(self) -> _FakeBatch:
        return _FakeBatch()

    async def send_batch(self, batch, topic, partition) -> asyncio.Future:
        self.calls.append(("send", topic, partition, batch.record_count()))
        future = asyncio.get_running_loop().create_future()
        if self.fail:
            future.set_exception(ConnectionError("the broker went away"))
        else:
            offset = self._next.get((topic, partition), 0)
            self._next[(topic, partition)] = offset + batch.record_count()
            future.set_result(SimpleNamespace(topic=topic, partition=partition, offset=offset))
            self.pending.extend(batch.values)
        return future

    async def begin_transaction(self) -> None:
        self.calls.append(("begin",))

    async def send_offsets_to_transaction(self, offsets, group_id) -> None:
        self.calls.append(("offsets", offsets, group_id))
        self.pending_offsets.update(offsets)

    async def commit_transaction(self) -> None:
        self.calls.append(("commit",))
        self.committed += self.pending
        self.committed_offsets.update(self.pending_offsets)
        self.pending, self.pending_offsets = [], {}

    async def abort_transaction(self) -> None:
        self.calls.append(("abort",))
        self.pending, self.pending_offsets = [], {}

    async def stop(self) -> None:
        pass


class _FakeConsumer:
    def __init__(self) -> None:
        self.commits: list = []

    async def commit(self, offsets) -> None:
        self.commits.append(offsets)


def _reduce_worker(tmp_path: Path, state: str, guarantee: str, producer: _FakeProducer, consumer: _FakeConsumer):
    from mrkafka.kafka.client import Outbox
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
    worker._outbox = Outbox(producer, config.reducer_group, consumer, guarantee == EXACTLY_ONCE)
    worker._last_purge = float("inf")
    return worker


@pytest.mark.parametrize("guarantee", ["exactly-once", "at-least-once"])
@pytest.mark.parametrize("state", ["memory", "rocksdb"])
def test_a_failed_write_commits_neither_offset_nor_state(tmp_path: Path, state: str, guarantee: str) -> None:
    consumer, tp = _FakeConsumer(), object()
    producer = _FakeProducer(fail=True)
    worker = _reduce_worker(tmp_path, state, guarantee, producer, consumer)
    worker.reducer.merge(partial_from_pairs([b"a"], [1]), timestamp=0)
    worker._position, worker._committed = 7, 3
    with pytest.raises(ConnectionError):
        asyncio.run(worker._commit(consumer, tp, admin=None))
    assert consumer.commits == [] and ("commit",) not in producer.calls and ("offsets",) not in producer.calls
    assert dict(worker.reducer.store.items()) == {} and worker.reducer.store.checkpoint is None
    assert worker._committed == 3
    worker._abort()  # what the session's end does: the merges are read again from offset 3
    worker.reducer.store.close()

    producer = _FakeProducer(fail=False)
    worker = _reduce_worker(tmp_path, state, guarantee, producer, consumer)
    worker.reducer.merge(partial_from_pairs([b"a"], [1]), timestamp=0)
    worker._position, worker._committed = 7, 3
    asyncio.run(worker._commit(consumer, tp, admin=None))
    sends = [("send", worker.config.changelog_topic, 0, 1), ("send", "out", (murmur2(b"a") & 0x7FFFFFFF) % 2, 1)]
    if guarantee == "exactly-once":  # one transaction: the records, then the position, then the commit
        assert consumer.commits == []
        assert sorted(producer.calls[1:3]) == sorted(sends)
        assert producer.calls[0] == ("begin",) and producer.calls[3:] == [
            ("offsets", {tp: 7}, "app-reducers"),
            ("commit",),
        ]
    else:  # the records, acknowledged, then the offset commit
        assert sorted(producer.calls) == sorted(sends) and consumer.commits == [{tp: 7}]
    assert dict(worker.reducer.store.items()) == {b"a": 1} and worker.reducer.store.checkpoint.offset == 1
    worker.reducer.store.close()


class _RefusingAdmin:
    async def delete_records(self, records, timeout_ms=None):
        from aiokafka.errors import OffsetOutOfRangeError

        raise OffsetOutOfRangeError()  # a new leader whose high watermark is still behind


def test_a_refused_purge_does_not_fail_the_commit(tmp_path: Path) -> None:
    consumer, tp = _FakeConsumer(), object()
    worker = _reduce_worker(tmp_path, "memory", "at-least-once", _FakeProducer(fail=False), consumer)
    worker.reducer.merge(partial_from_pairs([b"a"], [1]), timestamp=0)
    worker._position, worker._committed = 4, 0
    asyncio.run(worker._commit(consumer, tp, _RefusingAdmin(), purge=True))
    assert consumer.commits == [{tp: 4}] and dict(worker.reducer.store.items()) == {b"a": 1}


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


def test_a_producer_whose_sender_died_is_retried_with_new_clients() -> None:
    from aiokafka.errors import KafkaError as AIOKafkaError

    from mrkafka.kafka.client import FATAL, RETRIABLE, classify

    try:
        try:
            raise AssertionError("a bug inside the sender routine")
        except AssertionError as cause:
            raise AIOKafkaError("Unexpected error during batch delivery") from cause
    except AIOKafkaError as wrapped:
        assert classify(wrapped) == RETRIABLE
    assert classify(AIOKafkaError("refused")) == FATAL


# -- the map worker's rebalances, with fake clients --------------------------------------------


class _RebalancingConsumer:
    """A consumer whose group takes every partition away and gives it back (a worker joined)
    while the map worker asks for ``rebalance_at``'s position in the middle of a poll."""

    def __init__(self, worker, producers: dict, rebalance_at) -> None:
        self.worker, self.producers, self.rebalance_at = worker, producers, rebalance_at
        self.positions: dict = {}

    async def position(self, tp) -> int:
        if tp == self.rebalance_at:
            self.rebalance_at = None
            assigned = list(self.positions)
            await self.worker.on_partitions_revoked(assigned)
            self.positions = {tp: 0 for tp in assigned}  # a new assignment starts from its commits
            await self.worker.on_partitions_assigned(assigned)
        return self.positions[tp]

    async def committed(self, tp) -> int | None:
        offsets = [p.committed_offsets[tp] for p in self.producers.values() if tp in p.committed_offsets]
        return offsets[-1] if offsets else None

    def seek(self, tp, offset: int) -> None:
        self.positions[tp] = offset

    def pause(self, *tps) -> None:
        pass

    def resume(self, *tps) -> None:
        pass

    def paused(self) -> set:
        return set()

    def poll(self, lines: dict) -> dict:
        """What ``getmany`` returns: each partition's lines from its position on."""
        batches = {}
        for tp, position in self.positions.items():
            batches[tp] = _records(lines[tp][position:], first=position)
            self.positions[tp] = len(lines[tp])
        return batches


def _settings(reducers: int) -> StreamSettings:
    return StreamSettings(
        application_id="app", bootstrap="unused:1", input_topic="in", output_topic="out", reducers=reducers
    )


def _fake_task_producers(monkeypatch) -> dict:
    """Map tasks get fake producers, kept in the returned dict by ``task#n``."""
    from mrkafka.stream.workers import map_worker

    producers: dict = {}

    def producer(config, task: str) -> _FakeProducer:
        producers[f"{task}#{len(producers)}"] = made = _FakeProducer()
        return made

    async def start(client, bootstrap, timeout=None, security=None) -> None:
        pass

    monkeypatch.setattr(map_worker, "new_producer", producer)
    monkeypatch.setattr(map_worker.client, "start", start)
    return producers


def test_a_poll_that_straddles_a_rebalance_is_counted_once(monkeypatch) -> None:
    # A rebalance while a poll is being mapped once let the poll's records of a partition that
    # came straight back be held *and* read again from its committed offset: counted twice.
    from aiokafka.structs import TopicPartition

    from mrkafka.stream import workers

    config = StreamConfig.of(JobSpec(load_job(WORDCOUNT)), _settings(reducers=2), output_partitions=2)
    producers = _fake_task_producers(monkeypatch)
    tps = [TopicPartition("in", 0), TopicPartition("in", 1)]
    lines = {tps[0]: [b"a b", b"c"], tps[1]: [b"a a", b"d e"]}

    async def run() -> None:
        worker = workers.MapWorker(config)
        consumer = _RebalancingConsumer(worker, producers, rebalance_at=tps[1])
        worker._consumer = consumer
        consumer.positions = {tp: 0 for tp in tps}
        await worker.on_partitions_assigned(tps)
        for _ in range(2):  # the rebalance comes in the first poll, between its two partitions
            await worker._process(consumer, consumer.poll(lines))
        await worker._commit()

    asyncio.run(run())
    counts: collections.Counter = collections.Counter()
    for made in producers.values():
        for value in made.committed:
            table = partial_from_ipc(value)
            counts.update(dict(zip(table.column("key").to_pylist(), table.column("value").to_pylist())))
    assert counts == oracle_wordcount(b"\n".join(lines[tps[0]] + lines[tps[1]]))
    committed = {tp: [p.committed_offsets[tp] for p in producers.values() if tp in p.committed_offsets] for tp in tps}
    assert {tp: offsets[-1] for tp, offsets in committed.items()} == {tp: 2 for tp in tps}


def test_an_idle_map_task_commits_an_empty_transaction_that_reducers_skip(monkeypatch, tmp_path: Path) -> None:
    # Kafka 4.3 can leave a committed transaction without markers around a lone broker's
    # restart (KAFKA-20734); only the same producer's next transaction over the same partitions
    # closes it. An idle task writes one every IDLE_COMMIT_S: an empty record to every
    # repartition partition and its last offsets again.
    from aiokafka.structs import TopicPartition

    from mrkafka.stream import workers
    from mrkafka.stream.workers import map_worker

    config = StreamConfig.of(JobSpec(load_job(WORDCOUNT)), _settings(reducers=3), output_partitions=2)
    producers = _fake_task_producers(monkeypatch)
    tp = TopicPartition("in", 0)

    async def run() -> list:
        worker = workers.MapWorker(config)
        consumer = _RebalancingConsumer(worker, producers, rebalance_at=None)
        worker._consumer, consumer.positions = consumer, {tp: 0}
        await worker.on_partitions_assigned([tp])
        (producer,) = producers.values()
        await worker._process(consumer, consumer.poll({tp: [b"a b", b"a"]}))
        await worker._commit()
        await worker._commit()  # idle, but not for long: nothing
        data = list(producer.committed)
        assert producer.committed_offsets == {tp: 2} and producer.calls.count(("commit",)) == 1
        worker._outboxes[tp].committed_at -= map_worker.IDLE_COMMIT_S
        await worker._commit()  # idle for IDLE_COMMIT_S
        assert producer.calls.count(("commit",)) == 2 and producer.calls[-2] == ("offsets", {tp: 2}, "app")
        assert producer.committed[len(data) :] == [None, None, None]
        sends = [call for call in producer.calls if call[0] == "send"][-3:]
        assert sorted(partition for _, _, partition, _ in sends) == [0, 1, 2]
        return producer.committed

    committed = asyncio.run(run())
    reducer = workers.ReduceWorker(
        dataclasses.replace(config, settings=dataclasses.replace(config.settings, state_dir=str(tmp_path))), 0
    )
    keep_alive, block = [value for value in committed if value is None][:1], committed[:1]
    for values, merged in ((keep_alive, 0), (block, 1)):
        reducer._merge([SimpleNamespace(topic="r", partition=0, offset=0, value=v, timestamp=0) for v in values])
        assert pending(reducer.reducer) == merged


class _SlowOutbox:
    """A map task's outbox whose every append yields to the loop, where ``meanwhile`` runs
    once: what a rebalance's commit meets when a poll finishes mapping during its produce."""

    def __init__(self, meanwhile) -> None:
        self.meanwhile = meanwhile
        self.appended: list[bytes] = []
        self.commits: list[dict] = []

    async def append(self, topic, partition, key, value, timestamp=None, headers=None) -> None:
        self.appended.append(value)
        await asyncio.sleep(0)
        if self.meanwhile is not None:
            self.meanwhile, meanwhile = None, self.meanwhile
            meanwhile()

    async def flush(self) -> dict:
        return {}

    async def commit(self, offsets) -> None:
        self.commits.append(dict(offsets))


def test_a_map_commit_commits_the_position_of_what_it_produced() -> None:
    """A poll held while a commit produces (the map of a poll ends during a revocation's commit)
    is neither in that commit's blocks nor in its offsets: it is committed next, or read again
    by the partition's next owner. Committing the newer position with the older blocks lost a
    poll whenever the task was then closed (found on prefix_index over real text)."""
    from mrkafka.stream.workers import MapWorker

    config = StreamConfig.of(JobSpec(load_job(WORDCOUNT)), _settings(reducers=2))
    worker = MapWorker(config)
    tp = TopicPartition("in", 0)
    lines = [Record(offset, None, b"a b c %d" % offset, 0) for offset in range(20)]

    def a_poll_is_held() -> None:
        worker.mapper.hold(0, worker.mapper.map(0, lines[10:]))
        worker._positions[tp] = 20

    outbox = _SlowOutbox(a_poll_is_held)
    worker._outboxes[tp] = outbox
    process(worker.mapper, 0, lines[:10])
    worker._positions[tp] = 10
    asyncio.run(worker._commit())

    def counts(blocks: list[bytes]) -> collections.Counter:
        return collections.Counter(dict(pair for block in blocks for pair in partial_to_pairs(partial_from_ipc(block))))

    assert outbox.commits == [{tp: 10}]
    assert counts(outbox.appended) == {b"a": 10, b"b": 10, b"c": 10} | {b"%d" % i: 1 for i in range(10)}
    assert worker._positions[tp] == 20  # the later poll, for the next commit
    held = [block.data for block in worker.mapper.drain(0)]
    assert counts(held) == {b"a": 10, b"b": 10, b"c": 10} | {b"%d" % i: 1 for i in range(10, 20)}


def test_a_dead_kafka_clients_orphaned_error_is_not_printed_and_others_are(caplog) -> None:
    # aiokafka issues 907 and 1004: a producer whose sender died leaves its error in a future nobody awaits.
    import gc

    from aiokafka.errors import KafkaError as AIOKafkaError

    from mrkafka.stream.workers.session import orphaned_kafka_errors_quiet as _orphaned_kafka_errors_quiet

    loop = asyncio.new_event_loop()
    try:
        loop.set_exception_handler(_orphaned_kafka_errors_quiet)
        for error in (AIOKafkaError("Unexpected error during batch delivery"), ValueError("a bug of our own")):
            future = loop.create_future()
            future.set_exception(error)
            del future
        gc.collect()
    finally:
        loop.close()
    assert "Unexpected error during batch delivery" not in caplog.text
    assert "Future exception was never retrieved" in caplog.text and "a bug of our own" in caplog.text


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
