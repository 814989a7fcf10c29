"""The stream engine's tasks: map workers over the input topic, reduce workers over the
repartition topic. Each is an asyncio object that a Ray async actor hosts.

A map worker consumes the input topic in consumer group APP, so that Kafka assigns it
partitions and a new run resumes from the committed offsets. Per poll of an input partition
it maps the records and combines them; per commit interval it combines what each input
partition (task) holds and produces the partial (key, value) pairs to ``APP-repartition``,
each pair in the partition murmur2 gives its key, as the batch shuffle does. The pairs of
one partition travel as Arrow blocks (an IPC stream of up to ~1 MB per Kafka record), not
one record each: the topic is internal, and blocks spare both sides a per-pair cost. Its commit:

1. produce what each task holds, flush every task's producer, wait for the acknowledgements;
2. commit the consumed input offsets.

A reduce worker owns repartition partition K: it restores its state store from the
changelog's partition K, then merges every partial into the state with the job's reduce.
Several updates of one key within a commit interval are collapsed to the latest (as Kafka
Streams' record cache does). Its commit:

1. write each updated key's state to ``APP-STORE-changelog`` partition K, and
   ``finish(key, state)`` to the output topic;
2. flush the producer and wait for the acknowledgements;
3. commit the consumed repartition offset;
4. (RocksDB) record the changelog offset the local store is current to.

So a crash anywhere replays input whose effects may already be in the changelog: at least once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.structs import TopicPartition

from mrkafka import output
from mrkafka.aggregate import (
    KEY,
    Accumulator,
    Aggregation,
    decode_key,
    decode_values,
    key_kind,
    partial_from_ipc,
    partial_from_pairs,
    partial_to_ipc,
)
from mrkafka.batch.tasks import JobSpec
from mrkafka.errors import KafkaError
from mrkafka.kafka.client import BatchSender, start, started
from mrkafka.kafka.serdes import Serde, serialize_key
from mrkafka.mapping import job_failed, map_arrow, map_records
from mrkafka.output import Counters
from mrkafka.partition import partition_for, split_by_partition

__all__ = ["MapWorker", "ReduceWorker", "StreamConfig"]

_POLL_MS = 100
_MAX_POLL_RECORDS = 20_000
#: Combined partials a map worker holds before producing them even if its commit is not due.
MAX_HELD_ROWS = 1_000_000
# Arrow block size on the repartition topic: under Kafka's default 1 MB record limit.
_BLOCK_BYTES = 900_000


@dataclass(frozen=True)
class StreamConfig:
    spec: JobSpec
    application_id: str
    bootstrap: str
    input_topic: str
    output_topic: str
    reducers: int
    output_partitions: int
    commit_interval_ms: int = 1000
    state: str = "memory"
    state_dir: str = "~/.cache/mrkafka/state"

    @property
    def repartition_topic(self) -> str:
        return f"{self.application_id}-repartition"

    @property
    def changelog_topic(self) -> str:
        return f"{self.application_id}-{self.spec.job_cls.store_name}-changelog"

    @property
    def reducer_group(self) -> str:
        # Reducers own fixed partitions (assigned, not balanced); a group whose members are the
        # map workers would refuse commits from consumers outside it, so they commit here.
        return f"{self.application_id}-reducers"


def _quiet_client_logs() -> None:
    # aiokafka logs every rebalance and retry; what a user must know reaches them as errors.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)


@contextmanager
def _kafka_errors(worker: str) -> Iterator[None]:
    """A Kafka failure inside a worker, as one clear error (the job's own errors pass through)."""
    try:
        yield
    except AIOKafkaError as exc:
        raise KafkaError(
            f"{worker}: Kafka failed ({type(exc).__name__}: {exc}); a new run resumes from the last commit"
        ) from exc


def _consumer(bootstrap: str, group_id: str | None, **options: Any) -> AIOKafkaConsumer:
    """A consumer that commits only when told, starting at the earliest offset it has none for."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 << 20,
        **options,
    )


def _producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5, max_batch_size=1 << 20
    )


class MapWorker(ConsumerRebalanceListener):
    """Consumes input partitions, maps, combines, and produces partials to the repartition topic."""

    def __init__(self, config: StreamConfig) -> None:
        _quiet_client_logs()
        self.config = config
        self.job = config.spec.instantiate()
        self.aggregation = Aggregation(self.job, config.spec.vectorize)
        self.vectorized = config.spec.vectorize and self.job.has_map_arrow()
        self.serde = Serde(self.job.value_serde)
        self.counters = Counters()
        self._consumer: AIOKafkaConsumer | None = None
        self._senders: dict[int, BatchSender] = {}  # one producer per input partition (task)
        self._held: dict[TopicPartition, Accumulator] = {}  # per task: partials not yet produced
        self._positions: dict[TopicPartition, int] = {}
        self._timestamps: dict[TopicPartition, int] = {}  # newest input timestamp held, per task
        self._commit_lock = asyncio.Lock()
        self._stop = asyncio.Event()

    async def stop(self) -> None:
        self._stop.set()

    async def run(self, bounds: dict[int, int] | None) -> Counters:
        """Process until stopped; with ``bounds``, no record at or past a partition's bound."""
        config = self.config
        # Workers join one by one at start; a short heartbeat makes the rebalances quick.
        consumer = _consumer(config.bootstrap, config.application_id, heartbeat_interval_ms=500)
        self._consumer = consumer
        with _kafka_errors("a map worker"):
            await self._run(consumer, bounds)
        return self.counters

    async def _run(self, consumer: AIOKafkaConsumer, bounds: dict[int, int] | None) -> None:
        config = self.config
        async with started(consumer, config.bootstrap):
            consumer.subscribe([config.input_topic], listener=self)
            last_commit = time.monotonic()
            try:
                while not self._stop.is_set():
                    batches = await consumer.getmany(timeout_ms=_POLL_MS, max_records=_MAX_POLL_RECORDS)
                    reached = False
                    for tp, records in batches.items():
                        if bounds is not None:
                            bound = bounds.get(tp.partition, 0)
                            if records[-1].offset + 1 >= bound:
                                consumer.pause(tp)  # nothing at or past the bound is ours
                                reached = True
                                records = [r for r in records if r.offset < bound]
                        if records:
                            self._process(tp, records)
                            self._positions[tp] = records[-1].offset + 1
                    due = time.monotonic() - last_commit >= config.commit_interval_ms / 1000
                    held_rows = sum(a.input_records for a in self._held.values())
                    if reached or due or held_rows >= MAX_HELD_ROWS:
                        await self._commit()
                        last_commit = time.monotonic()
            finally:
                await self._commit()
                for sender in self._senders.values():
                    await sender.producer.stop()
                self._senders.clear()

    def _process(self, tp: TopicPartition, records: list[Any]) -> None:
        """Map and combine one poll of one input partition into what the task holds."""
        first, last = records[0].offset, records[-1].offset
        values = [r.value if r.value is not None else b"" for r in records]
        self.counters.add(output.MAP_INPUT_RECORDS, len(values))
        self.counters.add(output.BYTES_READ, sum(map(len, values)))
        where = f"topic {tp.topic} partition {tp.partition} offsets {first}-{last}"
        if self.vectorized:
            table = map_arrow(self.job, pa.array(values, pa.binary()), where)
            self.counters.add(output.MAP_OUTPUT_RECORDS, table.num_rows)
        else:

            def where_(offset: int) -> str:
                return f"topic {tp.topic} partition {tp.partition} offset {offset}"

            table, _, emitted = map_records(
                self.job, ((r.offset, v) for r, v in zip(records, values)), where_, self.aggregation
            )
            self.counters.add(output.MAP_OUTPUT_RECORDS, emitted)
        try:
            # Combining each poll first keeps the hash tables small: measured faster than one big merge.
            table = self.aggregation.combine(table) if self.vectorized else table
            self._held.setdefault(tp, Accumulator(self.aggregation)).add(table)
        except Exception as exc:
            raise job_failed("reduce (as combiner)", exc, where) from exc
        self._timestamps[tp] = max(self._timestamps.get(tp, 0), max(r.timestamp for r in records))
        self.counters.update(((self.config.spec.name, name), n) for name, n in self.job.counters.items())
        self.job.counters.clear()

    async def _produce_held(self) -> None:
        """Produce what each task holds, combined, to the repartition topic."""
        config = self.config
        held, self._held = self._held, {}
        timestamps, self._timestamps = self._timestamps, {}
        for tp, accumulator in held.items():
            table = accumulator.result()
            self.counters.add(output.COMBINE_OUTPUT_RECORDS, table.num_rows)
            sender = await self._sender(tp.partition)
            for k, part in enumerate(split_by_partition(table, config.reducers)):
                for block in partial_to_ipc(part, _BLOCK_BYTES):
                    await sender.append(config.repartition_topic, k, None, block, timestamps[tp])

    async def _sender(self, partition: int) -> BatchSender:
        if partition not in self._senders:
            producer = _producer(self.config.bootstrap)
            await start(producer, self.config.bootstrap)
            self._senders[partition] = BatchSender(producer)
        return self._senders[partition]

    async def _commit(self) -> None:
        # The loop and the rebalance listener both commit; one at a time, each with its own snapshot.
        async with self._commit_lock:
            positions, self._positions = self._positions, {}
            await self._produce_held()
            for sender in self._senders.values():
                await sender.flush()
            if self._consumer is not None:
                owned = self._consumer.assignment()
                positions = {tp: offset for tp, offset in positions.items() if tp in owned}
                if positions:
                    await self._consumer.commit(positions)

    # Rebalance: commit what was processed before a partition moves to another worker.
    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._commit()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        pass


class ReduceWorker:
    """Owns repartition partition K: its state store, changelog partition and output records."""

    def __init__(self, config: StreamConfig, partition: int) -> None:
        from mrkafka.stream.store import open_store

        _quiet_client_logs()
        self.config = config
        self.partition = partition
        self.job = config.spec.instantiate()
        self.aggregation = Aggregation(self.job, config.spec.vectorize)
        self.serde = Serde(self.job.value_serde)
        state_dir = Path(config.state_dir).expanduser() / config.application_id / f"{partition}"
        self.store = open_store(config.state, state_dir)
        self.kind = "bytes"
        self.counters = Counters()
        self.latencies_ms: list[float] = []
        self._dirty: dict[bytes, int] = {}  # key -> newest input timestamp that changed it
        self._newest_dirty = -1
        self._target: int | None = None
        self._reached = asyncio.Event()
        self._stop = asyncio.Event()
        self._position = 0
        self._consumer: AIOKafkaConsumer | None = None
        self.sender: BatchSender | None = None
        self._changelog_end = 0

    async def stop(self) -> None:
        self._stop.set()

    async def finish_at(self, offset: int) -> None:
        """Return once everything before ``offset`` of the repartition partition is committed."""
        self._target = offset
        await self._reached.wait()

    async def run(self) -> Counters:
        with _kafka_errors(f"reduce worker {self.partition}"):
            await self._run()
        self.store.close()
        return self.counters

    async def _run(self) -> None:
        config = self.config
        producer = _producer(config.bootstrap)
        async with started(producer, config.bootstrap):
            self.sender = BatchSender(producer)
            await self._restore()
            consumer = _consumer(config.bootstrap, config.reducer_group)
            tp = TopicPartition(config.repartition_topic, self.partition)
            async with started(consumer, config.bootstrap):
                consumer.assign([tp])
                self._position = await consumer.position(tp)
                self._consumer, self._tp = consumer, tp
                last_commit = time.monotonic()
                try:
                    while not self._stop.is_set():
                        batches = await consumer.getmany(tp, timeout_ms=_POLL_MS, max_records=_MAX_POLL_RECORDS)
                        records = batches.get(tp, [])
                        if records:
                            self._merge(records)
                            self._position = records[-1].offset + 1
                        at_target = self._target is not None and self._position >= self._target
                        if at_target or time.monotonic() - last_commit >= config.commit_interval_ms / 1000:
                            await self._commit()
                            last_commit = time.monotonic()
                            if at_target:
                                self._reached.set()
                finally:
                    await self._commit()

    async def _restore(self) -> None:
        """Read changelog partition K into the store, from the store's checkpoint (or the start)."""
        config = self.config
        tp = TopicPartition(config.changelog_topic, self.partition)
        # "earliest" rather than seek_to_beginning(), which can lose to the reset that assign() starts.
        consumer = _consumer(config.bootstrap, None)
        async with started(consumer, config.bootstrap):
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            if self.store.checkpoint is not None:
                consumer.seek(tp, self.store.checkpoint)
            decode = self.serde.decode
            while await consumer.position(tp) < end:
                batches = await consumer.getmany(tp, timeout_ms=_POLL_MS, max_records=_MAX_POLL_RECORDS)
                for record in batches.get(tp, []):
                    if record.value is None:
                        self.store.delete(record.key)
                    else:
                        self.store.put(record.key, decode(record.value))
        self._changelog_end = end

    def _merge(self, records: list[Any]) -> None:
        dirty = self._dirty
        for record in records:
            table = partial_from_ipc(record.value)
            self.kind = key_kind(table)
            self.counters.add(output.REDUCE_INPUT_RECORDS, table.num_rows)
            keys = table.column(KEY).to_pylist()
            try:
                self.store.update(keys, decode_values(table), self.aggregation.merge)
            except Exception as exc:
                where = f"topic {record.topic} partition {record.partition} offset {record.offset}"
                raise job_failed("reduce", exc, where) from exc
            timestamp = record.timestamp
            if timestamp >= self._newest_dirty:  # max(held, timestamp) is timestamp for every key
                dirty.update(dict.fromkeys(keys, timestamp))
                self._newest_dirty = timestamp
            else:
                for key in keys:
                    if timestamp > dirty.get(key, -1):
                        dirty[key] = timestamp

    async def _commit(self) -> None:
        config = self.config
        if self._dirty:
            encode = self.serde.encode
            finish = self.job.finish if self.job.has_finish() else None
            changed = list(self._dirty.items())
            self._dirty, self._newest_dirty = {}, -1
            keys = [key for key, _ in changed]
            out_partitions = partition_for(pa.array(keys, pa.binary()), config.output_partitions).tolist()
            now_ms = time.time() * 1000
            for (key, timestamp), out_partition in zip(changed, out_partitions):
                state = self.store.get(key)
                await self.sender.append(config.changelog_topic, self.partition, key, encode(state))
                python_key = decode_key(key, self.kind)
                value = finish(python_key, state) if finish else state
                await self.sender.append(config.output_topic, out_partition, serialize_key(python_key), encode(value))
                self.latencies_ms.append(now_ms - timestamp)
            self.counters.add(output.REDUCE_OUTPUT_RECORDS, len(changed))
        acks = await self.sender.flush()
        if self._consumer is not None:
            await self._consumer.commit({self._tp: self._position})
        changelog = [m.offset for m in acks if m.topic == config.changelog_topic]
        if changelog:
            self._changelog_end = max(changelog) + 1
        self.store.commit(self._changelog_end)

    def final_partial(self) -> pa.Table:
        """The held state of this partition, through ``finish``, as a partial sorted by key."""
        pairs = [(decode_key(key, self.kind), state) for key, state in self.store.items()]
        table = partial_from_pairs([k for k, _ in pairs], [v for _, v in pairs], self.kind)
        if self.job.has_finish():
            table = output.finish_partial(table, self.job.finish)
        return output.sort_by_key(table)

    def write_part(self, path: str, fmt: str) -> Counters:
        table = self.final_partial()
        counters = Counters()
        counters.add(output.REDUCE_INPUT_GROUPS, table.num_rows)
        counters.add(output.BYTES_WRITTEN, output.write_part(table, path, fmt))
        counters.add(output.REDUCE_TASKS)
        return counters

    def latency_samples(self) -> np.ndarray:
        return np.asarray(self.latencies_ms, dtype=np.float64)
