"""A map worker consumes the input topic in consumer group APP (read_committed), maps and
combines what each input partition (task) brings, and commits each task, each commit
interval and before its partition is revoked:

1. drain the task's combined partials into repartition blocks and produce them;
2. flush, and wait until the broker acknowledged every block;
3. commit them with the task's input position (the consumer's position, which steps over
   transaction markers and compaction gaps), in group APP.

Under exactly once, a task idle for ``IDLE_COMMIT_S`` commits an empty transaction over the
same partitions, which closes one that Kafka left without markers (``MapWorker._keep_alive``).
A record that kills the worker's process as it is mapped is found and stopped at (or skipped)
through in-flight files (``mrkafka.stream.workers.inflight``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.structs import TopicPartition

from mrkafka.core.counters import BYTES_READ, MAP_INPUT_RECORDS, Counters
from mrkafka.errors import JobFailedError
from mrkafka.kafka import client
from mrkafka.kafka.client import Backoff, Outbox, started
from mrkafka.obs import faults
from mrkafka.obs.metrics import MetricValues, with_counters
from mrkafka.stream.config import StreamConfig
from mrkafka.stream.tasks import Mapped, StreamMapper
from mrkafka.stream.workers import metrics
from mrkafka.stream.workers.inflight import PIECES, InFlight
from mrkafka.stream.workers.session import (
    MAX_POLL_RECORDS,
    POLL_MS,
    call,
    configure_logs,
    new_consumer,
    new_producer,
    supervise,
)

__all__ = ["IDLE_COMMIT_S", "MAX_HELD_ROWS", "MapWorker"]

log = logging.getLogger(__name__)

#: Combined partials a map worker holds before producing them even if its commit is not due.
MAX_HELD_ROWS = 1_000_000
#: How long a map task stays without a transaction, under exactly once (see ``MapWorker._keep_alive``).
IDLE_COMMIT_S = 10.0


class MapWorker(ConsumerRebalanceListener):
    """Consumes input partitions, maps, combines, and produces partials to the repartition topic."""

    def __init__(self, config: StreamConfig) -> None:
        configure_logs()
        self.config = config
        self.mapper = StreamMapper(config.spec, config.reducers, config.input_topic)
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()  # one commit or close at a time (the loop's, a rebalance's)
        self._consumer: AIOKafkaConsumer | None = None
        self._outboxes: dict[TopicPartition, Outbox] = {}  # one per assigned partition (task)
        self._positions: dict[TopicPartition, int] = {}  # processed up to, not yet committed
        self._bounds: dict[int, int] | None = None
        self._broken: Exception | None = None  # a failure inside a rebalance callback
        self._values = metrics.new(config)
        state = Path(config.settings.state_dir).expanduser() / config.application_id
        self._inflight = InFlight(state / "inflight")

    async def metric_values(self) -> MetricValues:
        """What this worker counted (``mrkafka.obs.metrics``), its counters included."""
        return with_counters(self._values, self.mapper.counters)

    async def stop(self) -> None:
        self._stop.set()

    async def ready(self) -> None:
        """Constructed (the driver starts the map workers together: they join the group at once)."""

    async def run(self, bounds: dict[int, int] | None) -> Counters:
        """Process until stopped; with ``bounds``, no record at or past a partition's bound."""
        self._bounds = bounds
        await supervise("a map worker", self._session, self._abort, self.config, self._stop, self.mapper.counters)
        return self.mapper.counters

    def _abort(self) -> None:
        self.mapper.drop()
        self._positions.clear()
        self._broken = None

    async def _session(self, backoff: Backoff) -> None:
        config = self.config
        # A short heartbeat makes rebalances (a worker joining, restarted, leaving) quick.
        consumer = new_consumer(config, config.application_id, heartbeat_interval_ms=500)
        async with started(consumer, config.bootstrap, security=config.security):
            self._consumer = consumer
            try:
                consumer.subscribe([config.input_topic], listener=self)
                last_commit = time.monotonic()
                while not self._stop.is_set():
                    batches = await consumer.getmany(timeout_ms=POLL_MS, max_records=MAX_POLL_RECORDS)
                    if self._broken is not None:
                        raise self._broken
                    await self._process(consumer, batches)
                    reached = await self._pause_at_bounds(consumer)
                    if self._broken is not None:
                        raise self._broken
                    due = time.monotonic() - last_commit >= config.settings.commit_interval_ms / 1000
                    if reached or due or self.mapper.held_records >= MAX_HELD_ROWS:
                        await self._commit()
                        backoff.reset()
                        last_commit = time.monotonic()
                await self._commit()  # a graceful stop; never after a failure
            finally:
                await self._close_tasks(set(self._outboxes))
                self._consumer = None

    async def _process(self, consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[Any]]) -> None:
        """Map each partition's records off the loop, and hold the result on it.

        A rebalance may run at any ``await`` here. It does not wait for the map (one longer
        than the session timeout would get the worker expelled): it commits what a revoked
        partition held before this poll. A partition whose task was closed meanwhile, even
        if the same partition came back as a new task (seeked to its committed offset), drops
        this poll's records: they are read again from that offset, by whichever task owns it."""
        tasks = dict(self._outboxes)  # the tasks these records were fetched for
        for tp, records in batches.items():
            if not self._unchanged(tasks, tp):
                continue
            bound = self._bound(tp)
            position = await consumer.position(tp)
            if bound is not None:
                records = [r for r in records if r.offset < bound]
                position = min(position, bound)
            mapped = await asyncio.to_thread(self._map, tp.partition, records) if records else []
            if not self._unchanged(tasks, tp):
                continue
            for part in mapped:
                self.mapper.hold(tp.partition, part)
                records, nbytes = part.counters.get(MAP_INPUT_RECORDS), part.counters.get(BYTES_READ)
                metrics.consumed(self._values, f"map-{tp.partition}", tp.topic, records, nbytes)
            self._positions[tp] = position

    def _map(self, partition: int, records: list[Any]) -> list[Mapped]:
        """Map one poll under in-flight files: whole, or, where processes died mapping some of
        it, those records in pieces; a record that killed two, the last one mapping it alone,
        is a poison record (see ``mrkafka.stream.workers.inflight``)."""
        suspect = self._inflight.suspect(partition)
        if suspect is None or suspect[1] < records[0].offset or suspect[0] > records[-1].offset:
            return self._map_noted(partition, records)
        first, last, deaths = suspect
        inside = [r for r in records if first <= r.offset <= last]
        if first == last and deaths >= 2:
            self._poison(partition, first)
            inside = []
        mapped = self._map_noted(partition, [r for r in records if r.offset < first])
        size = -(-len(inside) // PIECES)
        for start in range(0, len(inside), size or 1):
            mapped += self._map_noted(partition, inside[start : start + size], deaths)
        return mapped + self._map_noted(partition, [r for r in records if r.offset > last])

    def _map_noted(self, partition: int, records: list[Any], deaths: int = 0) -> list[Mapped]:
        if not records:
            return []
        self._inflight.mapping(partition, records[0].offset, records[-1].offset, deaths)
        try:
            mapped = self.mapper.map(partition, records)
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

    def _unchanged(self, tasks: dict[TopicPartition, Outbox], tp: TopicPartition) -> bool:
        """Whether ``tp``'s task is still the one of ``tasks``, taken before an ``await``: a
        rebalance meanwhile may have closed it, or replaced it by a new task at its commit."""
        return tp in tasks and self._outboxes.get(tp) is tasks[tp]

    def _bound(self, tp: TopicPartition) -> int | None:
        return None if self._bounds is None else self._bounds.get(tp.partition, 0)

    async def _pause_at_bounds(self, consumer: AIOKafkaConsumer) -> bool:
        """Pause the partitions whose position reached their bound; whether one newly did.

        Positions, not record offsets: a partition that ends in a transaction marker or a
        compaction gap has no record at its bound - 1."""
        if self._bounds is None:
            return False
        reached = False
        tasks = dict(self._outboxes)
        for tp in set(tasks) - consumer.paused():
            bound = self._bound(tp)
            position = await call(consumer.position(tp), self.config, "reading a position")
            if not self._unchanged(tasks, tp):
                continue
            if position >= bound:
                consumer.pause(tp)
                self._positions[tp] = bound
                reached = True
        return reached

    async def _commit(self, tasks: set[TopicPartition] | None = None) -> None:
        """The numbered commit of the module docstring, for every task (or ``tasks``)."""
        config = self.config
        async with self._lock:
            for tp in set(self._outboxes) if tasks is None else tasks & set(self._outboxes):
                outbox = self._outboxes[tp]
                # What the task holds and the position it holds it to, taken together: a poll
                # mapped meanwhile (a revocation commits while _process maps) is held after this
                # drain, with its own position, for the next commit (or dropped with the task).
                blocks = self.mapper.drain(tp.partition)
                position = self._positions.pop(tp, None)
                started = time.monotonic()
                for block in blocks:  # 1
                    await outbox.append(config.repartition_topic, block.partition, None, block.data, block.timestamp)
                offsets = {tp: position} if position is not None else {}
                if not blocks and not offsets and config.exactly_once:
                    offsets = await self._keep_alive(outbox)
                if await call(outbox.flush(), config, "writing"):  # 2
                    faults.point("map-produced")
                committed = await call(outbox.commit(offsets), config, "committing")
                if committed:
                    self.mapper.committed(tp.partition)
                task = f"map-{tp.partition}"
                metrics.produced(self._values, task, config.repartition_topic, [b.data for b in blocks])
                if committed:
                    metrics.committed(self._values, config, task, "map", time.monotonic() - started)

    async def _keep_alive(self, outbox: Outbox) -> dict[TopicPartition, int]:
        """An idle task commits an empty transaction every ``IDLE_COMMIT_S``: an empty record to
        every repartition partition (reducers skip it) and its last offsets again.

        Kafka 4.3 can complete a transaction without writing its markers, when it does so while
        a partition of the transaction has no leader, as around a lone broker's restart
        (KAFKA-20734): the transaction then stays open in those partitions, and read_committed
        readers (reducers; the task's own committed offsets) wait at it for good. The next
        transaction of the same producer over the same partitions closes it. An active task
        writes one every commit; an idle one would never write again without this."""
        if time.monotonic() - outbox.committed_at < IDLE_COMMIT_S:
            return {}
        for partition in range(self.config.reducers):
            await outbox.append(self.config.repartition_topic, partition, None, None)
        return outbox.offsets

    async def _open_tasks(self, consumer: AIOKafkaConsumer, partitions: set[TopicPartition]) -> None:
        """Start each task's producer (fencing its older instances), then seek to its committed
        offset: only now has the previous owner's last transaction settled."""
        config = self.config
        for tp in partitions - set(self._outboxes):
            producer = new_producer(config, f"map-{tp.partition}")
            await client.start(producer, config.bootstrap, security=config.security)
            metrics.aborted(self._values, config, f"map-{tp.partition}", 0)  # the series exists from the start
            self._outboxes[tp] = Outbox(producer, config.application_id, consumer, config.exactly_once)
        for tp in partitions:
            committed = await call(consumer.committed(tp), config, "reading committed offsets")
            if committed is not None:
                consumer.seek(tp, committed)

    async def _close_tasks(self, tasks: set[TopicPartition]) -> None:
        """Close the tasks' producers, aborting what they did not commit (never during a commit)."""
        async with self._lock:
            for tp in tasks:
                self.mapper.drop({tp.partition})
                self._positions.pop(tp, None)
                outbox = self._outboxes.pop(tp, None)
                if outbox is not None:
                    if await outbox.abort():
                        metrics.aborted(self._values, self.config, f"map-{tp.partition}")
                    await client.close_quietly(outbox.producer)

    # Rebalance: commit a task before its partition moves to another worker; start a task when
    # a partition arrives. aiokafka swallows a listener's errors: they go to the loop.
    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        if revoked:
            faults.point("map-revoked")
        try:
            await self._commit(set(revoked))
        except Exception as exc:
            self._broken = self._broken or exc
        await self._close_tasks(set(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        self._values.inc("mrkafka_rebalances_total")
        # Nothing is fetched for a partition before its task is open (pausing drops what was).
        consumer.pause(*assigned)
        await self._close_tasks(set(self._outboxes) - set(assigned))  # lost without a revocation
        if self._broken is not None:
            return
        try:
            await self._open_tasks(consumer, set(assigned))
        except Exception as exc:
            self._broken = exc
            return
        consumer.resume(*assigned)
