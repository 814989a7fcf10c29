"""A map worker consumes the input topic in consumer group APP (read_committed, cooperative
rebalancing), maps and combines what each input partition (task) brings, and commits all
its tasks at once, each commit interval and when partitions are revoked:

1. drain every task's combined partials into repartition blocks and produce them;
2. flush, and wait until the broker acknowledged every block;
3. commit them with every task's input position (the consumer's position, which steps over
   transaction markers and compaction gaps), in group APP; each offset's metadata carries the
   counts of its partition's input up to it (``MapWorker._counted_positions``).

Under exactly once a commit is one Kafka transaction of the worker's one producer
(``APP-map-I`` for worker I: Kafka Streams' exactly-once v2), its offsets sent with the
consumer's group metadata, so that a worker that lost its partitions (it stalled past its
session) cannot commit them any more (``mrkafka.kafka.outbox``). A restarted worker's
producer fences its dead instance and aborts its open transaction; a partition that moved
to another worker is read from its committed offset once the transaction that held its
offsets is settled (librdkafka fetches stable offsets only). A worker idle for
``IDLE_COMMIT_S`` commits an empty transaction over the same partitions, which closes one
that Kafka left without markers (``MapWorker._keep_alive``).

A worker's session runs in a thread of its own (librdkafka's calls block; its heartbeats run
in librdkafka's threads, so a long map never costs the worker its membership); the actor's
loop answers ``stop`` and ``metric_values`` meanwhile. Rebalance callbacks run inside
``consume``, on the session's thread, between two polls.

A record that kills the worker's process as it is mapped is found and stopped at (or skipped)
through in-flight files (``mrkafka.stream.workers.inflight``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from mrkafka.core.counters import BYTES_READ, MAP_INPUT_RECORDS, Counters
from mrkafka.errors import JobFailedError
from mrkafka.kafka.client import Backoff, TaskMigrated
from mrkafka.kafka.outbox import OFFSET_METADATA_BYTES, Outbox
from mrkafka.kafka.records import Polled, polls
from mrkafka.obs import faults
from mrkafka.obs.metrics import MetricValues, with_counters
from mrkafka.stream.config import StreamConfig
from mrkafka.stream.tasks import Mapped, StreamMapper
from mrkafka.stream.workers import metrics
from mrkafka.stream.workers.inflight import PIECES, InFlight
from mrkafka.stream.workers.session import (
    MAX_POLL_RECORDS,
    CommitClock,
    configure_logs,
    group_consumer,
    supervise,
    worker_outbox,
)

__all__ = ["IDLE_COMMIT_S", "MAX_HELD_ROWS", "MapWorker"]

log = logging.getLogger(__name__)

#: Combined partials a map worker holds before producing them even if its commit is not due.
MAX_HELD_ROWS = 1_000_000
#: How long a map worker stays without a transaction, under exactly once (see ``MapWorker._keep_alive``).
IDLE_COMMIT_S = 10.0


class MapWorker:
    """Consumes input partitions, maps, combines, and produces partials to the repartition topic."""

    def __init__(self, config: StreamConfig, index: int = 0) -> None:
        configure_logs()
        self.config = config
        self.index = index
        self._name = f"mapper-{index}"  # its commits and transactions: one for all its partitions
        self.mapper = StreamMapper(config.spec, config.reducers, config.input_topic)
        self._stop = threading.Event()
        self._consumer: Consumer | None = None
        self._outbox: Outbox | None = None
        self._tasks: set[int] = set()  # input partitions assigned and open
        self._positions: dict[int, int] = {}  # processed up to, not yet committed
        self._committed: dict[int, TopicPartition] = {}  # a task's committed offset and its counts' metadata
        self._events = Counters()  # what is not counted per commit: retries
        self._paused: set[int] = set()  # partitions at their bound
        self._bounds: dict[int, int] | None = None
        self._failing = False  # a session is ending on an error: revocations commit nothing
        self._closing = False  # a session is ending after its last commit
        self._values = metrics.new(config)
        state = Path(config.settings.state_dir).expanduser() / config.application_id
        self._inflight = InFlight(state / "inflight")

    async def metric_values(self) -> MetricValues:
        """What this worker counted (``mrkafka.obs.metrics``), its counters included."""
        return with_counters(self._values, self.mapper.counters, self._events)

    async def stop(self) -> None:
        self._stop.set()

    async def ready(self) -> None:
        """Constructed (the driver starts the map workers together: they join the group at once)."""

    async def run(self, bounds: dict[int, int] | None) -> Counters:
        """Process until stopped; with ``bounds``, no record at or past a partition's bound."""
        self._bounds = bounds
        await asyncio.to_thread(
            supervise,
            "a map worker",
            self._session,
            self._abort,
            self.config,
            self._stop,
            self._events,
        )
        return self._events

    def _abort(self) -> None:
        self.mapper.drop()
        self._positions.clear()

    def _session(self, backoff: Backoff) -> None:
        config = self.config
        self._failing = self._closing = False
        self._outbox = outbox = worker_outbox(config, f"map-{self.index}")
        metrics.aborted(self._values, config, self._name, 0)  # the series exists from the start
        consumer, watch = group_consumer(config, config.application_id)
        self._consumer = consumer
        try:
            # The group join goes on in librdkafka's threads while the producer starts; partitions
            # come only in consume, and their committed offsets once stable (module docstring).
            consumer.subscribe(
                [config.input_topic], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost
            )
            outbox.start()  # fences this worker's older instance: its open transaction is aborted
            clock = CommitClock(config.settings.commit_interval_ms / 1000)
            while not self._stop.is_set():
                self._process(consumer, consumer.consume(MAX_POLL_RECORDS, clock.poll_s()))
                watch.check(unavailable=False)  # a refused login; an outage is waited out
                reached = self._pause_at_bounds(consumer)
                if reached or clock.due() or self.mapper.held_records >= MAX_HELD_ROWS:
                    self._commit()
                    clock.committed()
                    backoff.reset()
            self._commit()  # a graceful stop; never after a failure
            self._closing = True  # all committed: the revocation that closing brings has nothing to commit
        except BaseException:
            self._failing = True
            if outbox.abort():
                metrics.aborted(self._values, config, self._name)
            raise
        finally:
            self._close(consumer)
            outbox.close()

    def _close(self, consumer: Consumer) -> None:
        """Leave the group. The revocation that closing brings commits nothing: a graceful stop
        committed just before, and a failure commits nothing."""
        try:
            consumer.close()
        except Exception as exc:  # closing must not replace the error that ended the session
            log.debug("closing the consumer failed: %r", exc)
        self._consumer = None
        self._tasks.clear()
        self._paused.clear()
        self._committed.clear()

    def _process(self, consumer: Consumer, messages: list[Any]) -> None:
        """Map each partition's records of one poll, and hold the result."""
        for partition, polled in polls(messages).items():
            if partition not in self._tasks:
                continue
            bound = self._bound(partition)
            position = polled.last_offset + 1
            if bound is not None:
                polled = polled.cut(0, polled.before(bound))
                position = min(position, bound)
            for part in self._map(partition, polled) if polled else []:
                self.mapper.hold(partition, part)
                count, nbytes = part.counters.get(MAP_INPUT_RECORDS), part.counters.get(BYTES_READ)
                metrics.consumed(self._values, f"map-{partition}", self.config.input_topic, count, nbytes)
            self._positions[partition] = max(self._positions.get(partition, position), position)

    def _map(self, partition: int, polled: Polled) -> list[Mapped]:
        """Map one poll under in-flight files: whole, or, where processes died mapping some of
        it, those records in pieces; a record that killed two, the last one mapping it alone,
        is a poison record (see ``mrkafka.stream.workers.inflight``)."""
        suspect = self._inflight.suspect(partition)
        if suspect is None or suspect[1] < polled.first_offset or suspect[0] > polled.last_offset:
            return self._map_noted(partition, polled)
        first, last, deaths = suspect
        start, after = polled.before(first), polled.through(last)
        stop = after
        if first == last and deaths >= 2:
            self._poison(partition, first)
            stop = start
        mapped = self._map_noted(partition, polled.cut(0, start))
        size = -(-(stop - start) // PIECES)
        for piece in range(start, stop, size or 1):
            mapped += self._map_noted(partition, polled.cut(piece, min(piece + size, stop)), deaths)
        return mapped + self._map_noted(partition, polled.cut(after))

    def _map_noted(self, partition: int, polled: Polled, deaths: int = 0) -> list[Mapped]:
        if not polled:
            return []
        self._inflight.mapping(partition, polled.first_offset, polled.last_offset, deaths)
        try:
            mapped = self.mapper.map(partition, polled)
        finally:
            self._inflight.done(partition)
        return [mapped] if mapped is not None else []

    def _poison(self, partition: int, offset: int) -> None:
        where = f"topic {self.config.input_topic} partition {partition} offset {offset}"
        if not self.config.spec.skip_errors:
            raise JobFailedError(
                f"the worker's process died twice mapping the record at {where}, the second time mapping it "
                "alone (a crash, or the machine's memory killer); --on-error skip skips it"
            )
        log.warning("skipped the record at %s: the worker's process died mapping it", where)
        self.mapper.skipped(partition)
        self._inflight.done(partition)

    def _bound(self, partition: int) -> int | None:
        return None if self._bounds is None else self._bounds.get(partition, 0)

    def _pause_at_bounds(self, consumer: Consumer) -> bool:
        """Pause the partitions whose position reached their bound; whether one newly did.

        Positions, not record offsets: a partition that ends in a transaction marker or a
        compaction gap has no record at its bound - 1."""
        if self._bounds is None:
            return False
        waiting = sorted(self._tasks - self._paused)
        if not waiting:
            return False
        topic = self.config.input_topic
        positions = consumer.position([TopicPartition(topic, p) for p in waiting])
        # A partition nothing was read from yet has no position: it starts at its committed
        # offset, or at its beginning (at its bound already, when the input has nothing new).
        unknown = [tp for tp in positions if tp.offset < 0]
        starts = {tp.partition: tp.offset for tp in positions if tp.offset >= 0}
        if unknown:
            for tp in consumer.committed(unknown, timeout=self.config.settings.task_timeout_s):
                if tp.offset < 0:
                    tp.offset = consumer.get_watermark_offsets(tp, self.config.settings.task_timeout_s)[0]
                starts[tp.partition] = tp.offset
        reached = []
        for partition, position in starts.items():
            bound = self._bound(partition)
            if position >= bound:
                reached.append(TopicPartition(topic, partition))
                self._paused.add(partition)
                self._positions[partition] = bound
        if reached:
            consumer.pause(reached)
        return bool(reached)

    def _commit(self) -> None:
        """The numbered commit of the module docstring, for every task."""
        config, outbox, consumer = self.config, self._outbox, self._consumer
        if outbox is None or consumer is None:
            return
        started = time.monotonic()
        produced: dict[int, list[bytes]] = {}
        for partition in sorted(self._tasks):  # 1
            for block in self.mapper.drain(partition):
                outbox.append(config.repartition_topic, block.partition, None, block.data, block.timestamp)
                produced.setdefault(partition, []).append(block.data)
        positions = self._counted_positions(consumer)
        if not produced and not positions and config.exactly_once:
            positions = self._keep_alive(outbox)
        if outbox.flush():  # 2
            faults.point("map-produced")
        committed = outbox.commit(positions, consumer)  # 3
        for partition, blocks in produced.items():
            metrics.produced(self._values, f"map-{partition}", config.repartition_topic, blocks)
        if committed:
            for partition in self._tasks:
                self.mapper.committed(partition)
            self._committed.update((tp.partition, tp) for tp in positions)
            metrics.committed(self._values, config, self._name, "map", time.monotonic() - started)

    def _counted_positions(self, consumer: Consumer) -> list[TopicPartition]:
        """The next commit's input offsets, each with the counts of its partition's input up to
        it as metadata: those its last commit carried plus what the task drained since. The
        driver sums them at a run's start and end, so what a worker counted outlives its process
        and a poll read again counts once (``Counters.to_text``)."""
        topic = self.config.input_topic
        offsets = {p: self._positions.pop(p) for p in sorted(self._tasks) if p in self._positions}
        unknown = [TopicPartition(topic, p) for p in offsets if p not in self._committed]
        if unknown:  # stable already: the partition was read from its committed offset
            for tp in consumer.committed(unknown, timeout=self.config.settings.task_timeout_s):
                self._committed[tp.partition] = tp
        positions = []
        for partition, offset in offsets.items():
            counts = Counters.from_text(self._committed[partition].metadata)
            counts.update(self.mapper.drained(partition))
            positions.append(TopicPartition(topic, partition, offset, counts.to_text(OFFSET_METADATA_BYTES)))
        return positions

    def _keep_alive(self, outbox: Outbox) -> list[TopicPartition]:
        """An idle worker commits an empty transaction every ``IDLE_COMMIT_S``: an empty record to
        every repartition partition and its tasks' last offsets again.

        Kafka 4.3 can complete a transaction without writing its markers, when it does so while
        a partition of the transaction has no leader, as around a lone broker's restart
        (KAFKA-20734): the transaction then stays open in those partitions, and read_committed
        readers (reducers; the group's committed offsets) wait at it for good. The next
        transaction of the same producer over the same partitions closes it. A busy worker
        writes one every commit; an idle one would never write again without this."""
        if time.monotonic() - outbox.committed_at < IDLE_COMMIT_S:
            return []
        for partition in range(self.config.reducers):
            outbox.append(self.config.repartition_topic, partition, None, None)
        known = [self._committed.get(p) for p in sorted(self._tasks)]
        return [tp for tp in known if tp is not None and tp.offset >= 0]

    # Rebalance callbacks (cooperative: each names only the partitions that move).
    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """New tasks; librdkafka then reads their committed offsets, once stable."""
        if partitions:
            self._values.inc("mrkafka_rebalances_total")
        for tp in partitions:
            self._tasks.add(tp.partition)
            self.mapper.drop({tp.partition})
            self._positions.pop(tp.partition, None)
            self._paused.discard(tp.partition)
            self._committed.pop(tp.partition, None)  # another worker may have committed it since

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Commit every task before these partitions move to another worker (nothing after a
        failure, nor at the session's end)."""
        if not partitions:
            return
        faults.point("map-revoked")
        if not (self._failing or self._closing):
            self._commit()
        self._drop(partitions)

    def _lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """The group gave these partitions to others without a revocation (this worker's session
        expired): what the worker did not commit is dropped, and a new session rejoins."""
        self._drop(partitions)
        if not self._failing:
            raise TaskMigrated(f"lost input partitions {sorted(tp.partition for tp in partitions)}")

    def _drop(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._tasks.discard(tp.partition)
            self._paused.discard(tp.partition)
            self._positions.pop(tp.partition, None)
            self._committed.pop(tp.partition, None)
            self.mapper.drop({tp.partition})
