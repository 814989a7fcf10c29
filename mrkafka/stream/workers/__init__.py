"""The stream engine's workers: thin Kafka shells around ``StreamMapper`` and ``StreamReducer``,
each hosted by a Ray async actor.

A worker runs *sessions*. A session starts the worker's Kafka clients, (reducer) restores
its store, and processes until told to stop. While a broker is away, a session waits in
place: its idempotent producer retries every batch and its consumer retries every commit,
for up to ``task_timeout`` (so a batch acknowledged before the outage is never sent twice).
A failure that ends the session (a client that cannot start, a request that no retry
helped) makes the worker drop what it had not committed, close its clients, back off and
start a new session from the last commit, for at most ``task_timeout`` without progress; a
lost assignment (task migrated) does the same without backing off. The job's own errors
and fatal Kafka errors (authorization, a record too large) end the run with one line.
Mapping and merging run off the event loop, so that a slow map never starves the
consumer's heartbeats.

Each task writes through its own producer and commits with an ``Outbox``: under exactly
once (the default) the producer is transactional, its id fixed by the task (``APP-map-P``
for input partition P, ``APP-reduce-K`` for repartition partition K, as Kafka Streams' first
exactly-once version did), and a commit is one Kafka transaction holding the task's
records and its input offsets. Starting a task's producer fences any older instance of the
task (a worker stalled past its session, a zombie) and aborts its open transaction, so the
task reads its committed offset only after that. Under at least once the producer is
idempotent and the offsets are committed after the records were acknowledged.

A map worker consumes the input topic in consumer group APP (read_committed), maps and
combines what each input partition (task) brings, and commits each task, each commit
interval and before its partition is revoked:

1. drain the task's combined partials into repartition blocks and produce them;
2. flush, and wait until the broker acknowledged every block;
3. commit them with the task's input position (the consumer's position, which steps over
   transaction markers and compaction gaps), in group APP.

Under exactly once, a task idle for ``IDLE_COMMIT_S`` commits an empty transaction over the
same partitions, which closes one that Kafka left without markers (``MapWorker._keep_alive``).

A reduce worker owns repartition partition K. It restores its store from changelog
partition K up to its last stable offset (from the store's checkpoint, when the
checkpoint belongs to that changelog), merges partial blocks into an interval's pending
state, and commits:

1. compute the changelog and output records of every changed key (``finish`` and the
   output serde run here: an error writes nothing);
2. produce them, flush, and wait for every acknowledgement;
3. commit them with the repartition position, in group APP-reducers;
4. move the interval's merges into the store, with the changelog position they reach
   (RocksDB: one write batch; a crash before it is repaired by the restore);
5. every ``PURGE_INTERVAL_S``, delete the repartition records before that position.

A failure at any step commits nothing after it, and the task's open transaction is
aborted (by the task's next producer, at the latest). Under at least once, a crash between
steps 2 and 3 replays input whose effect is already written: counts can come out too high.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.errors import ProducerFenced, TransactionalIdAuthorizationFailed
from aiokafka.structs import TopicPartition

from mrkafka.core.counters import (
    BYTES_READ,
    BYTES_WRITTEN,
    MAP_INPUT_RECORDS,
    REDUCE_INPUT_GROUPS,
    REDUCE_TASKS,
    RETRIES,
    Counters,
)
from mrkafka.errors import KafkaError
from mrkafka.io import formats
from mrkafka.kafka import client
from mrkafka.kafka.client import (
    CONNECT_TIMEOUT,
    FATAL,
    MIGRATED,
    RETRIABLE,
    Backoff,
    Outbox,
    classify,
    denied,
    describe,
    started,
)
from mrkafka.obs import faults
from mrkafka.obs.histogram import LatencyHistogram
from mrkafka.obs.metrics import Figures, restarted_actor, with_counters
from mrkafka.stream.config import MAX_MESSAGE_BYTES, StreamConfig
from mrkafka.stream.state.stores import open_store
from mrkafka.stream.tasks import StreamMapper, StreamReducer, checkpoint_matches, record_digest

__all__ = ["MAX_MESSAGE_BYTES", "MapWorker", "ReduceWorker", "StreamConfig"]

log = logging.getLogger(__name__)

_POLL_MS = 100
_MAX_POLL_RECORDS = 20_000
#: Combined partials a map worker holds before producing them even if its commit is not due.
MAX_HELD_ROWS = 1_000_000
#: How often a reducer deletes the repartition records it has committed (Kafka Streams: 30 s).
PURGE_INTERVAL_S = 30.0
#: How long a map task stays without a transaction, under exactly once (see ``MapWorker._keep_alive``).
IDLE_COMMIT_S = 10.0


def _configure_logs() -> None:
    """aiokafka logs every rebalance and retry: what a user must know reaches them as errors.
    With ``--debug`` (``MRKAFKA_DEBUG``) a worker logs its sessions and retries, and aiokafka
    what it does, to the run's output."""
    if os.environ.get("MRKAFKA_DEBUG"):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
        logging.getLogger("aiokafka").setLevel(logging.INFO)
    else:
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def _consumer(config: StreamConfig, group_id: str | None, **options: Any) -> AIOKafkaConsumer:
    """A read_committed consumer that commits only when told, from the earliest offset it has none for."""
    return AIOKafkaConsumer(
        bootstrap_servers=config.bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_partition_fetch_bytes=4 << 20,
        **config.security.aiokafka_options(),
        **options,
    )


def _producer(config: StreamConfig, task: str) -> AIOKafkaProducer:
    """Task ``task``'s producer: idempotent, retrying a batch for up to the task timeout (the
    broker drops the copies a retry after an outage sends again); under exactly once,
    transactional with the id ``APP-task``."""
    return AIOKafkaProducer(
        bootstrap_servers=config.bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=1 << 20,
        max_request_size=MAX_MESSAGE_BYTES,
        request_timeout_ms=int(config.settings.task_timeout_s * 1000),
        transactional_id=f"{config.application_id}-{task}" if config.exactly_once else None,
        transaction_timeout_ms=config.transaction_timeout_ms,
        **config.security.aiokafka_options(),
    )


async def _call(awaitable: Awaitable[Any], config: StreamConfig, what: str) -> Any:
    """A Kafka call that waits out an outage (aiokafka retries it), for at most the task timeout."""
    try:
        return await asyncio.wait_for(awaitable, config.settings.task_timeout_s)
    except asyncio.TimeoutError:
        raise KafkaError(
            f"Kafka did not answer for {config.settings.task_timeout_s:.0f} s ({what}); "
            "nothing committed is lost, a new run resumes from the last commit"
        ) from None


async def supervise(
    who: str,
    session: Callable[[Backoff], Awaitable[None]],
    abort: Callable[[], None],
    config: StreamConfig,
    stopped: asyncio.Event,
    counters: Counters,
) -> None:
    """Run ``session`` until it returns, starting a new one after each retriable failure."""
    asyncio.get_running_loop().set_exception_handler(_orphaned_kafka_errors_quiet)
    backoff = Backoff(who, config.settings.task_timeout_s)
    while not stopped.is_set():
        try:
            await session(backoff)
            return
        except Exception as exc:
            kind = classify(exc)
            if kind == FATAL:
                transactional = isinstance(exc, TransactionalIdAuthorizationFailed)
                name = f"{config.application_id}-* (prefixed)" if transactional else ""
                if (not_allowed := denied(exc, "WRITE" if transactional else "READ", name)) is not None:
                    raise type(not_allowed)(f"{who}: {not_allowed}") from exc
                if isinstance(exc, AIOKafkaError):
                    raise KafkaError(f"{who}: Kafka refused ({describe(exc)})") from exc
                if isinstance(exc, KafkaError) and not str(exc).startswith(who):
                    raise type(exc)(f"{who}: {exc}") from exc
                raise
            abort()
            counters.add((RETRIES, kind), 1)
            log.info("%s: %s (%s); starting again from the last commit", who, kind, describe(exc))
            if kind == RETRIABLE:
                await backoff.wait(exc)


def _orphaned_kafka_errors_quiet(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The loop's handler of errors nobody retrieved: a Kafka error left in a dead client's
    future is logged at debug level, anything else as asyncio would.

    When a producer's sender fails on a broker that goes away mid-request (aiokafka issues
    907 and 1004: its sender routine dies with "Unexpected error during batch delivery"), it
    fails its transaction waiter, a future nobody awaits, and asyncio prints "Future exception
    was never retrieved" once the producer is dropped. The session that met the error already
    failed with it and was started again (a retry): the message would only alarm the user."""
    if context.get("message") == "Future exception was never retrieved" and isinstance(
        context.get("exception"), AIOKafkaError
    ):
        log.debug("a closed Kafka client's error, already handled: %r", context["exception"])
        return
    loop.default_exception_handler(context)


class MapWorker(ConsumerRebalanceListener):
    """Consumes input partitions, maps, combines, and produces partials to the repartition topic."""

    def __init__(self, config: StreamConfig) -> None:
        _configure_logs()
        self.config = config
        self.mapper = StreamMapper(config.spec, config.reducers, config.input_topic)
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()  # one commit or close at a time (the loop's, a rebalance's)
        self._consumer: AIOKafkaConsumer | None = None
        self._outboxes: dict[TopicPartition, Outbox] = {}  # one per assigned partition (task)
        self._positions: dict[TopicPartition, int] = {}  # processed up to, not yet committed
        self._bounds: dict[int, int] | None = None
        self._broken: Exception | None = None  # a failure inside a rebalance callback
        self._figures = _figures(config)

    async def figures(self) -> Figures:
        """What this worker counted (``mrkafka.obs.metrics``), its counters included."""
        return with_counters(self._figures, self.mapper.counters, self.config.application_id)

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
        consumer = _consumer(config, config.application_id, heartbeat_interval_ms=500)
        async with started(consumer, config.bootstrap, security=config.security):
            self._consumer = consumer
            try:
                consumer.subscribe([config.input_topic], listener=self)
                last_commit = time.monotonic()
                while not self._stop.is_set():
                    batches = await consumer.getmany(timeout_ms=_POLL_MS, max_records=_MAX_POLL_RECORDS)
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
            mapped = await asyncio.to_thread(self.mapper.map, tp.partition, records) if records else None
            if not self._unchanged(tasks, tp):
                continue
            if mapped is not None:
                self.mapper.hold(tp.partition, mapped)
                labels = {"application": self.config.application_id, "task": f"map-{tp.partition}", "topic": tp.topic}
                self._figures.inc("mrkafka_records_consumed_total", mapped.counters.get(MAP_INPUT_RECORDS), **labels)
                self._figures.inc("mrkafka_bytes_consumed_total", mapped.counters.get(BYTES_READ), **labels)
            self._positions[tp] = position

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
            position = await _call(consumer.position(tp), self.config, "reading a position")
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
                if await _call(outbox.flush(), config, "writing"):  # 2
                    faults.point("map-produced")
                committed = await _call(outbox.commit(offsets), config, "committing")
                task = f"map-{tp.partition}"
                _produced(self._figures, config, task, config.repartition_topic, [b.data for b in blocks])
                if committed:
                    _committed(self._figures, config, task, "map", time.monotonic() - started)

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
            producer = _producer(config, f"map-{tp.partition}")
            await client.start(producer, config.bootstrap, security=config.security)
            if config.exactly_once:  # at 0 until one is: the series exists from the start
                self._figures.inc(
                    "mrkafka_transactions_total",
                    0,
                    application=config.application_id,
                    task=f"map-{tp.partition}",
                    outcome="aborted",
                )
            self._outboxes[tp] = Outbox(producer, config.application_id, consumer, config.exactly_once)
        for tp in partitions:
            committed = await _call(consumer.committed(tp), config, "reading committed offsets")
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
                    if await outbox.abort() and self.config.exactly_once:
                        self._figures.inc(
                            "mrkafka_transactions_total",
                            application=self.config.application_id,
                            task=f"map-{tp.partition}",
                            outcome="aborted",
                        )
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
        self._figures.inc("mrkafka_rebalances_total", application=self.config.application_id)
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


class ReduceWorker:
    """Owns repartition partition K: its state store, changelog partition and output records."""

    def __init__(self, config: StreamConfig, partition: int) -> None:
        _configure_logs()
        self.config = config
        self.partition = partition
        state_dir = Path(config.settings.state_dir).expanduser() / config.application_id / f"{partition}"
        store = open_store(config.settings.state, state_dir)
        self.reducer = StreamReducer(config.spec, partition, config.output_partitions, store)
        self._stop = asyncio.Event()
        self._position = 0  # merged up to
        self._committed = -1  # committed up to, once restored (-1: not yet)
        self._last_purge = 0.0
        self._outbox: Outbox | None = None
        self._figures = _figures(config, f"reduce-{partition}")

    async def figures(self) -> Figures:
        """What this worker counted (``mrkafka.obs.metrics``), its counters and its store included."""
        labels = {
            "application": self.config.application_id,
            "task": f"reduce-{self.partition}",
            "store": self.config.spec.job_cls.stream.store_name,
        }
        keys, size = self.reducer.store.size()
        self._figures.set("mrkafka_state_store_keys", keys, **labels)
        if size is not None:
            self._figures.set("mrkafka_state_store_bytes", size, **labels)
        return with_counters(self._figures, self.reducer.counters, self.config.application_id)

    async def stop(self) -> None:
        self._stop.set()

    async def query(self, key: str, edits: int) -> list[tuple[str, int, Any]] | None:
        """An interactive query of the committed state (``StreamReducer.query``); ``None`` while
        the store is being restored, as Kafka Streams refuses to query a restoring store."""
        return None if self._committed < 0 else self.reducer.query(key, edits)

    async def run(self) -> Counters:
        who = f"reduce worker {self.partition}"
        try:
            await supervise(who, self._session, self._abort, self.config, self._stop, self.reducer.counters)
        finally:
            self.reducer.store.close()
        return self.reducer.counters

    def _abort(self) -> None:
        self.reducer.abort()
        if self._outbox is not None:
            self._outbox.discard()
        self._committed = -1

    async def finish_at(self, offset: int) -> None:
        """Return once everything before ``offset`` of the repartition partition is committed
        (after a restart: restored and committed again)."""
        while self._committed < offset:
            await asyncio.sleep(0.05)

    async def write_part(self, path: str, fmt: str, offset: int) -> Counters:
        """Once committed up to ``offset``, the final state of this partition as a part file."""
        await self.finish_at(offset)
        faults.point("finish")
        table = await asyncio.to_thread(self.reducer.final_rows)
        counters = Counters()
        counters.add(REDUCE_INPUT_GROUPS, table.num_rows)
        counters.add(BYTES_WRITTEN, await asyncio.to_thread(formats.write_part, table, path, fmt, True))
        counters.add(REDUCE_TASKS)
        return counters

    def latency(self) -> LatencyHistogram:
        return self.reducer.latency

    async def _session(self, backoff: Backoff) -> None:
        try:
            await self._owned_session(backoff)
        except ProducerFenced as exc:
            # Reducers own their partition by assignment, not through a group: a newer instance
            # of this task means a second run of the application, which keeps the partition.
            raise KafkaError(
                f"another instance took over repartition partition {self.partition} (its producer "
                f"{self.config.application_id}-reduce-{self.partition} was fenced), or this worker stalled "
                f"for longer than the transaction timeout; is a second run of {self.config.application_id} going?"
            ) from exc

    async def _owned_session(self, backoff: Backoff) -> None:
        config = self.config
        admin = AIOKafkaAdminClient(bootstrap_servers=config.bootstrap, **config.security.aiokafka_options())
        # The task's producer first: it fences an older instance of this reducer and aborts its
        # open transaction, so the changelog and the committed position below are settled.
        producer = _producer(config, f"reduce-{self.partition}")
        async with (
            started(producer, config.bootstrap, security=config.security),
            started(admin, config.bootstrap, security=config.security),
        ):
            await self._restore()
            consumer = _consumer(config, config.reducer_group)
            tp = TopicPartition(config.repartition_topic, self.partition)
            async with started(consumer, config.bootstrap, security=config.security):
                self._outbox = Outbox(producer, config.reducer_group, consumer, config.exactly_once)
                consumer.assign([tp])
                self._position = await _call(consumer.position(tp), self.config, "reading a position")
                self._committed = self._position
                try:
                    await self._merge_and_commit(consumer, tp, admin, backoff)
                except Exception:
                    if await self._outbox.abort() and config.exactly_once:
                        self._figures.inc(
                            "mrkafka_transactions_total",
                            application=config.application_id,
                            task=f"reduce-{self.partition}",
                            outcome="aborted",
                        )
                    raise

    async def _merge_and_commit(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, admin: AIOKafkaAdminClient, backoff: Backoff
    ) -> None:
        """Merge and commit until stopped."""
        config = self.config
        last_commit = time.monotonic()
        while not self._stop.is_set():
            batches = await consumer.getmany(tp, timeout_ms=_POLL_MS, max_records=_MAX_POLL_RECORDS)
            records = batches.get(tp, [])
            if records:
                await asyncio.to_thread(self._merge, records)
            self._position = await _call(consumer.position(tp), config, "reading a position")
            if time.monotonic() - last_commit >= config.settings.commit_interval_ms / 1000:
                await self._commit(consumer, tp, admin)
                backoff.reset()
                last_commit = time.monotonic()
        await self._commit(consumer, tp, admin, purge=True)  # a graceful stop; never after a failure

    def _merge(self, records: list[Any]) -> None:
        for record in records:
            if record.value is None:  # an idle map task's keep-alive
                continue
            where = f"topic {record.topic} partition {record.partition} offset {record.offset}"
            self.reducer.merge_block(record.value, record.timestamp, where)
        labels = {
            "application": self.config.application_id,
            "task": f"reduce-{self.partition}",
            "topic": self.config.repartition_topic,
        }
        self._figures.inc("mrkafka_records_consumed_total", len(records), **labels)
        self._figures.inc("mrkafka_bytes_consumed_total", sum(len(r.value or b"") for r in records), **labels)

    async def _restore(self) -> None:
        """Bring the store up to changelog partition K's end, from its checkpoint where that
        checkpoint belongs to this changelog, else (wiped) from the beginning."""
        config, reducer = self.config, self.reducer
        tp = TopicPartition(config.changelog_topic, self.partition)
        consumer = _consumer(config, None)
        async with started(consumer, config.bootstrap, security=config.security):
            consumer.assign([tp])
            begin = (await _call(consumer.beginning_offsets([tp]), config, "restoring"))[tp]
            end = (await _call(consumer.end_offsets([tp]), config, "restoring"))[tp]
            checkpoint = reducer.store.checkpoint
            if checkpoint is not None:
                found = None
                if checkpoint.last_offset is not None and begin <= checkpoint.last_offset < end:
                    consumer.seek(tp, checkpoint.last_offset)
                    first = await self._first_record(consumer, tp, end)
                    found = (first.offset, record_digest(first)) if first is not None else None
                if not checkpoint_matches(checkpoint, begin, end, found):
                    log.warning(
                        "reduce worker %d: the local store does not match %s; restoring it in full",
                        self.partition,
                        config.changelog_topic,
                    )
                    reducer.store.wipe()
                    checkpoint = None
            start = checkpoint.offset if checkpoint is not None else begin
            consumer.seek(tp, start)
            labels = {"application": config.application_id, "task": f"reduce-{self.partition}"}
            self._figures.set("mrkafka_restore_records_to_restore", max(0, end - start), **labels)
            self._figures.set("mrkafka_restore_records_restored", 0, **labels)
            while await _call(consumer.position(tp), self.config, "reading a position") < end:
                batches = await consumer.getmany(tp, timeout_ms=_POLL_MS, max_records=_MAX_POLL_RECORDS)
                position = await _call(consumer.position(tp), self.config, "reading a position")
                await asyncio.to_thread(reducer.restore, batches.get(tp, []), min(position, end))
                self._figures.set("mrkafka_restore_records_restored", min(position, end) - start, **labels)
                faults.point("restore")

    async def _first_record(self, consumer: AIOKafkaConsumer, tp: TopicPartition, end: int) -> Any:
        while await _call(consumer.position(tp), self.config, "reading a position") < end:
            records = (await consumer.getmany(tp, timeout_ms=_POLL_MS, max_records=1)).get(tp, [])
            if records:
                return records[0]
        return None

    async def _commit(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, admin: AIOKafkaAdminClient, purge: bool = False
    ) -> None:
        """The numbered commit of the module docstring."""
        config, reducer, outbox = self.config, self.reducer, self._outbox
        started = time.monotonic()
        changes = reducer.changes()  # 1
        for key, value, headers in changes.changelog:  # 2
            await outbox.append(config.changelog_topic, self.partition, key, value, headers=headers)
        for partition, key, value in changes.output:
            await outbox.append(config.output_topic, partition, key, value)
        last = await _call(outbox.flush(), config, "writing")
        if last:
            faults.point("reduce-produced")
        position = self._position
        offsets = {tp: position} if position != self._committed else {}
        committed = await _call(outbox.commit(offsets), config, "committing")  # 3
        faults.point("reduce-committed")
        reducer.committed(changes, last.get((config.changelog_topic, self.partition)))  # 4
        self._committed = position
        task = f"reduce-{self.partition}"
        _produced(self._figures, config, task, config.changelog_topic, [value for _, value, _ in changes.changelog])
        _produced(self._figures, config, task, config.output_topic, [value for _, _, value in changes.output])
        if committed:
            _committed(self._figures, config, task, "reduce", time.monotonic() - started)
        self._figures.observe(
            "mrkafka_end_to_end_latency_seconds", changes.latencies_ms / 1000, application=config.application_id
        )
        if purge or time.monotonic() - self._last_purge >= PURGE_INTERVAL_S:  # 5
            await self._purge(admin, tp, position)

    async def _purge(self, admin: AIOKafkaAdminClient, tp: TopicPartition, before: int) -> None:
        """Delete what was committed. A purge that fails costs only disk, and is tried again at
        the next interval: right after a leader election, for one, the new leader's high
        watermark can still be below ``before``, and Kafka refuses (OffsetOutOfRange)."""
        try:
            await asyncio.wait_for(admin.delete_records({tp: RecordsToDelete(before)}), CONNECT_TIMEOUT)
        except (AIOKafkaError, asyncio.TimeoutError) as exc:
            # Not a warning: during a broker outage it would repeat every interval, and costs nothing.
            log.info("reduce worker %d: purging %s failed (%s); trying again later", self.partition, tp, describe(exc))
        self._last_purge = time.monotonic()


def _figures(config: StreamConfig, task: str | None = None) -> Figures:
    """A worker's figures, its counters of rare events at 0 (retries; a reducer's aborted
    transactions), so that their series exist before the first one happens."""
    figures = Figures(restarted_actor())
    for kind in (RETRIABLE, MIGRATED):
        figures.inc("mrkafka_retries_total", 0, application=config.application_id, error_class=kind)
    if task is not None and config.exactly_once:
        figures.inc("mrkafka_transactions_total", 0, application=config.application_id, task=task, outcome="aborted")
    return figures


def _produced(figures: Figures, config: StreamConfig, task: str, topic: str, values: list[bytes | None]) -> None:
    labels = {"application": config.application_id, "task": task, "topic": topic}
    figures.inc("mrkafka_records_produced_total", len(values), **labels)
    figures.inc("mrkafka_bytes_produced_total", sum(len(v) for v in values if v is not None), **labels)


def _committed(figures: Figures, config: StreamConfig, task: str, role: str, seconds: float) -> None:
    figures.inc("mrkafka_commits_total", application=config.application_id, task=task)
    figures.observe("mrkafka_commit_duration_seconds", seconds, application=config.application_id, role=role)
    if config.exactly_once:
        figures.inc("mrkafka_transactions_total", application=config.application_id, task=task, outcome="committed")
