"""A reduce worker owns repartition partition K. It restores its store from changelog
partition K up to its last stable offset (from the store's checkpoint, when the
checkpoint belongs to that changelog), merges partial blocks into an interval's pending
state, and commits:

1. compute the changelog and output records of every changed key (``finish`` and the
   output serde run here: an error writes nothing);
2. produce them, flush, and wait for every acknowledgement;
3. commit them with the repartition position, in group APP-reducers, the offset's metadata
   carrying the counts of the partition's input up to it (as a map worker's do);
4. move the interval's merges into the store, with the changelog position they reach
   (RocksDB: one write batch; a crash before it is repaired by the restore);
5. every ``PURGE_INTERVAL_S``, delete the repartition records before that position.

A failure at any step commits nothing after it, and the task's open transaction is
aborted (by the task's next producer, at the latest). Under at least once, a crash between
steps 2 and 3 replays input whose effect is already written: counts can come out too high.

The reducer's producer (``APP-reduce-K``, transactional under exactly once) is started
first: it fences an older instance of the reducer and aborts its open transaction, so the
changelog and the committed position read after it are settled. The repartition partition
is assigned, not subscribed: its offsets go to group APP-reducers with a consumer that is
no member, and a zombie is fenced by the producer's epoch alone. A session runs in a thread
of its own, as a map worker's does; the actor's loop answers queries, ``finish_at`` and
``write_part`` meanwhile.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from confluent_kafka import KafkaError as RdKafkaError

from mrkafka.core.counters import BYTES_WRITTEN, REDUCE_INPUT_GROUPS, REDUCE_TASKS, Counters
from mrkafka.errors import KafkaError
from mrkafka.io import formats, fs
from mrkafka.kafka import rdkafka
from mrkafka.kafka.admin import Admin
from mrkafka.kafka.client import Backoff
from mrkafka.kafka.outbox import OFFSET_METADATA_BYTES, Outbox
from mrkafka.kafka.records import Record, records
from mrkafka.obs import faults
from mrkafka.obs.histogram import LatencyHistogram
from mrkafka.obs.metrics import MetricValues, with_counters
from mrkafka.stream.config import StreamConfig
from mrkafka.stream.reducer import StreamReducer
from mrkafka.stream.state.stores import checkpoint_matches, open_store, record_digest
from mrkafka.stream.workers import metrics
from mrkafka.stream.workers.session import (
    MAX_POLL_RECORDS,
    POLL_MS,
    CommitClock,
    configure_logs,
    supervise,
    worker_outbox,
)

__all__ = ["PURGE_INTERVAL_S", "ReduceWorker"]

log = logging.getLogger(__name__)

#: How often a reducer deletes the repartition records it has committed (Kafka Streams: 30 s).
PURGE_INTERVAL_S = 30.0


class ReduceWorker:
    """Owns repartition partition K: its state store, changelog partition and output records."""

    def __init__(self, config: StreamConfig, partition: int) -> None:
        configure_logs()
        self.config = config
        self.partition = partition
        state_dir = Path(config.settings.state_dir).expanduser() / config.application_id / f"{partition}"
        store = open_store(config.settings.state, state_dir)
        self.reducer = StreamReducer(
            config.spec, partition, config.output_partitions, store, changelog=config.changelog_topic
        )
        self._stop = threading.Event()
        self._position = 0  # merged up to
        self._committed = -1  # committed up to, once restored (-1: not yet)
        self._counts = Counters()  # the counts of the input up to the committed position
        self._finish_at = -1  # the offset a bounded run's end waits for (finish_at), once told
        self._last_purge = 0.0
        self.restore_progress = (0, 0)  # changelog records restored, of those to restore
        self._outbox: Outbox | None = None
        self._task = f"reduce-{partition}"
        self._admin = Admin(config.bootstrap, security=config.security)
        self._values = metrics.new(config, self._task)

    async def metric_values(self) -> MetricValues:
        """What this worker counted (``mrkafka.obs.metrics``), its counters and its store included."""
        store = self.config.spec.job_cls.stream.store_name
        keys, size = self.reducer.store.size()
        self._values.set("mrkafka_state_store_keys", keys, store=store)
        if size is not None:
            self._values.set("mrkafka_state_store_bytes", size, store=store)
        return with_counters(self._values, self.reducer.counters, self.reducer.events)

    async def stop(self) -> None:
        self._stop.set()

    async def query(self, key: str, edits: int, deadline: float) -> list[tuple[str, int, Any]] | None:
        """An interactive query of the committed state (``StreamReducer.query``), in a thread:
        the event loop goes on committing meanwhile. ``None`` while the store is being restored,
        as Kafka Streams refuses to query a restoring store; ``TimeoutError`` past ``deadline``
        (``time.time()``), which ``ray.get`` raises to the asker as one."""
        if self._committed < 0:
            return None
        return await asyncio.to_thread(self.reducer.query, key, edits, deadline)

    async def run(self) -> Counters:
        who = f"reduce worker {self.partition}"
        try:
            await asyncio.to_thread(
                supervise, who, self._session, self._abort, self.config, self._stop, self.reducer.events
            )
        finally:
            self.reducer.store.close()
        return self.reducer.events

    def _abort(self) -> None:
        self.reducer.abort()
        self._committed = -1

    async def finish_at(self, offset: int) -> None:
        """Return once everything before ``offset`` of the repartition partition is committed
        (after a restart: restored and committed again).

        A read_committed reader stops at the first transaction still open. Once the map tasks
        stopped, none of theirs is (each was committed, or aborted by the task's next producer),
        so a position that stays short of ``offset`` for the task timeout, restored and polling,
        means a transaction Kafka left without markers (KAFKA-20734) or one that is not the
        application's: a ``KafkaError``, rather than a part file short of committed data."""
        self._finish_at = offset
        seen, since = self._committed, time.monotonic()
        while self._committed < offset:
            if self._committed != seen or self._committed < 0:
                seen, since = self._committed, time.monotonic()
            elif time.monotonic() - since > self.config.settings.task_timeout_s:
                raise KafkaError(
                    f"reduce worker {self.partition}: {self.config.repartition_topic} partition {self.partition} "
                    f"holds records up to offset {offset}, but read committed it stops at {seen} "
                    f"for {self.config.settings.task_timeout_s:.0f} s: a transaction there is still open "
                    "(kafka-transactions.sh find-hanging shows it, and abort ends it); "
                    "nothing was written, a new run goes on from the last commit"
                )
            await asyncio.sleep(0.05)

    async def write_part(
        self, path: str, fmt: str, offset: int, filesystems: Mapping[str, Any] | None = None
    ) -> Counters:
        """Once committed up to ``offset``, the final state of this partition as a part file, on
        the file systems the driver opened (``mrkafka.io.fs.filesystems``)."""
        fs.use(filesystems or {})
        await self.finish_at(offset)
        faults.point("finish")
        table = await asyncio.to_thread(self.reducer.final_rows)
        counters = Counters()
        counters.add(REDUCE_INPUT_GROUPS, table.num_rows)
        index = self.config.spec.writes_index
        counters.add(BYTES_WRITTEN, await asyncio.to_thread(formats.write_part, table, path, fmt, index))
        counters.add(REDUCE_TASKS)
        return counters

    def latency(self) -> LatencyHistogram:
        return self.reducer.latency

    def _session(self, backoff: Backoff) -> None:
        try:
            self._owned_session(backoff)
        except KafkaException as exc:
            if exc.args[0].code() not in _FENCED:
                raise
            # Reducers own their partition by assignment, not through a group: a newer instance
            # of this task means a second run of the application, which keeps the partition.
            raise KafkaError(
                f"another instance took over repartition partition {self.partition} (its producer "
                f"{self.config.application_id}-reduce-{self.partition} was fenced), or this worker stalled "
                f"for longer than the transaction timeout; is a second run of {self.config.application_id} going?"
            ) from exc

    def _owned_session(self, backoff: Backoff) -> None:
        config = self.config
        # The task's producer first: it fences an older instance of this reducer and aborts its
        # open transaction, so the changelog and the committed position below are settled.
        outbox = worker_outbox(config, f"reduce-{self.partition}")
        outbox.start()
        try:
            self._restore()
            consumer, watch = rdkafka.consumer(config.bootstrap, config.security, group=config.reducer_group)
            try:
                tp = TopicPartition(config.repartition_topic, self.partition)
                self._position = self._start(consumer, tp)
                consumer.assign([TopicPartition(tp.topic, tp.partition, self._position)])
                self._committed = self._position
                self._merge_and_commit(consumer, watch, tp, outbox, backoff)
            finally:
                consumer.close()
        except BaseException:
            if outbox.abort():
                metrics.aborted(self._values, config, self._task)
            raise
        finally:
            outbox.close()

    def _start(self, consumer: Consumer, tp: TopicPartition) -> int:
        """Where group APP-reducers committed the partition to, or its beginning."""
        timeout = self.config.settings.task_timeout_s
        (committed,) = consumer.committed([tp], timeout=timeout)
        self._counts = Counters.from_text(committed.metadata)
        if committed.offset >= 0:
            return committed.offset
        return consumer.get_watermark_offsets(tp, timeout=timeout)[0]

    def _merge_and_commit(
        self, consumer: Consumer, watch: rdkafka.Watch, tp: TopicPartition, outbox: Outbox, backoff: Backoff
    ) -> None:
        """Merge and commit until stopped."""
        config = self.config
        clock = CommitClock(config.settings.commit_interval_ms / 1000, phase=0.5)  # after the map workers'
        while not self._stop.is_set():
            polled = [record for _, record in records(consumer.consume(MAX_POLL_RECORDS, clock.poll_s()))]
            watch.check(unavailable=False)  # a refused login; an outage is waited out
            if polled:
                self._merge(polled)
            (position,) = consumer.position([tp])
            if position.offset >= 0:
                self._position = position.offset
            if clock.due() or self._committed < self._finish_at <= self._position:  # a bounded run's end: at once
                self._commit(consumer, tp, outbox)
                clock.committed()
                backoff.reset()
        self._commit(consumer, tp, outbox, purge=True)  # a graceful stop; never after a failure

    def _merge(self, records: list[Any]) -> None:
        topic = self.config.repartition_topic
        for record in records:
            if record.value is None:  # an idle map worker's keep-alive
                continue
            where = f"topic {topic} partition {self.partition} offset {record.offset}"
            self.reducer.merge_block(record.value, record.timestamp, where)
        nbytes = sum(len(r.value or b"") for r in records)
        metrics.consumed(self._values, self._task, topic, len(records), nbytes)

    def _restore(self) -> None:
        """Bring the store up to changelog partition K's end, from its checkpoint where that
        checkpoint belongs to this changelog, else (wiped) from the beginning."""
        config, reducer = self.config, self.reducer
        tp = TopicPartition(config.changelog_topic, self.partition)
        reducer.changelog_id = self._admin.topic_id(config.changelog_topic)
        # To the last stable offset: past a transaction Kafka left open, a read_committed reader waits for good.
        begins, ends = self._admin.topic_offsets(config.changelog_topic, "read_committed")
        begin, end = begins[self.partition], ends[self.partition]
        high = self._admin.topic_offsets(config.changelog_topic)[1][self.partition]
        consumer, watch = rdkafka.consumer(config.bootstrap, config.security, group=config.reducer_group)
        try:
            checkpoint = reducer.store.checkpoint
            if checkpoint is not None:
                found = None
                if checkpoint.last_offset is not None and begin <= checkpoint.last_offset < end:
                    first = self._first_record(consumer, watch, tp, checkpoint.last_offset, end)
                    found = (first.offset, record_digest(first)) if first is not None else None
                if not checkpoint_matches(checkpoint, begin, end, high, found, reducer.changelog_id):
                    log.warning(
                        "reduce worker %d: the local store does not match %s; restoring it in full",
                        self.partition,
                        config.changelog_topic,
                    )
                    reducer.store.wipe()
                    checkpoint = None
            start = checkpoint.offset if checkpoint is not None else begin
            started = time.monotonic()
            self._restored(0, max(0, end - start))
            position = start
            consumer.assign([TopicPartition(tp.topic, tp.partition, start if start > begin else OFFSET_BEGINNING)])
            while position < end:
                polled = [record for _, record in records(consumer.consume(MAX_POLL_RECORDS, POLL_MS / 1000))]
                watch.check(unavailable=False)
                (at,) = consumer.position([tp])
                reached = max(position, at.offset, polled[-1].offset + 1 if polled else -1)
                if not polled and reached == position:
                    continue  # nothing fetched yet (a broker away, a fetch under way)
                position = reached
                reducer.restore(polled, min(position, end))
                self._restored(min(position, end) - start, max(0, end - start))
                faults.point("restore")
            log.info(
                "reduce worker %d: restored offsets %d to %d of %s in %.1f s; %d keys held",
                *(self.partition, start, end, tp.topic, time.monotonic() - started, reducer.store.size()[0]),
            )
        finally:
            consumer.close()

    def _restored(self, done: int, total: int) -> None:
        self.restore_progress = (done, total)
        self._values.set("mrkafka_restore_records_to_restore", total)
        self._values.set("mrkafka_restore_records_restored", done)

    async def restoring(self) -> tuple[int, int] | None:
        """Changelog records restored and to restore while the store is being restored, else ``None``."""
        return self.restore_progress if self._committed < 0 else None

    def _first_record(
        self, consumer: Consumer, watch: rdkafka.Watch, tp: TopicPartition, offset: int, end: int
    ) -> Record | None:
        """The first record at or after ``offset`` (before ``end``), if there is one."""
        consumer.assign([TopicPartition(tp.topic, tp.partition, offset)])
        try:
            while True:
                polled = [record for _, record in records(consumer.consume(1, POLL_MS / 1000))]
                watch.check(unavailable=False)
                if polled:
                    return polled[0]
                (at,) = consumer.position([tp])
                if at.offset >= end:
                    return None
        finally:
            consumer.unassign()

    def _commit(self, consumer: Consumer, tp: TopicPartition, outbox: Outbox, purge: bool = False) -> None:
        """The numbered commit of the module docstring."""
        config, reducer = self.config, self.reducer
        started = time.monotonic()
        changes = reducer.changes()  # 1
        own = itertools.repeat(self.partition, len(changes))  # 2
        outbox.append_all(config.changelog_topic, own, changes.keys, changes.states, changes.header)
        outbox.append_all(config.output_topic, changes.partitions, changes.keys, changes.values)
        last = outbox.flush()
        if last:
            faults.point("reduce-produced")
        position, counts = self._position, Counters(self._counts.as_dict())
        counts.update(reducer.counted(changes))  # the metadata of the offset: counts up to it
        metadata = counts.to_text(OFFSET_METADATA_BYTES)
        positions = [TopicPartition(tp.topic, tp.partition, position, metadata)] if position != self._committed else []
        committed = outbox.commit(positions, consumer)  # 3
        faults.point("reduce-committed")
        reducer.committed(changes, last.get((config.changelog_topic, self.partition)))  # 4
        self._committed = position
        if positions:
            self._counts = counts
        metrics.produced(self._values, self._task, config.changelog_topic, changes.states)
        metrics.produced(self._values, self._task, config.output_topic, changes.values)
        if committed:
            metrics.committed(self._values, config, self._task, "reduce", time.monotonic() - started)
        self._values.observe("mrkafka_end_to_end_latency_seconds", changes.latencies_ms / 1000)
        if purge or time.monotonic() - self._last_purge >= PURGE_INTERVAL_S:  # 5
            self._purge(tp, position)

    def _purge(self, tp: TopicPartition, before: int) -> None:
        """Delete what was committed. A purge that fails costs only disk, and is tried again at
        the next interval: right after a leader election, for one, the new leader's high
        watermark can still be below ``before``, and Kafka refuses (OffsetOutOfRange)."""
        try:
            self._admin.delete_records(tp.topic, tp.partition, before)
        except KafkaError as exc:
            # Not a warning: during a broker outage it would repeat every interval, and costs nothing.
            log.info("reduce worker %d: purging %s failed (%s); trying again later", self.partition, tp, exc)
        self._last_purge = time.monotonic()


#: A producer that another of the same id (or the coordinator, at the transaction's timeout) fenced.
_FENCED = frozenset({RdKafkaError.PRODUCER_FENCED, RdKafkaError._FENCED, RdKafkaError.INVALID_PRODUCER_EPOCH})
