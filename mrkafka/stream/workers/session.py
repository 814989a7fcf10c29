"""What both kinds of worker share: their Kafka clients (a group consumer, an outbox over
one producer), when they commit, their logs, and the supervision that starts a new session
after a retriable failure."""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka import KafkaError as RdKafkaError

from mrkafka.core.counters import RETRIES, Counters
from mrkafka.errors import KafkaError
from mrkafka.kafka import rdkafka
from mrkafka.kafka.client import FATAL, RETRIABLE, Backoff, classify, describe
from mrkafka.kafka.outbox import Outbox, transactional_producer
from mrkafka.kafka.rdkafka import Watch
from mrkafka.stream import application
from mrkafka.stream.config import MAX_MESSAGE_BYTES, StreamConfig

__all__ = [
    "MAX_POLL_RECORDS",
    "POLL_MS",
    "CommitClock",
    "configure_logs",
    "group_consumer",
    "supervise",
    "worker_outbox",
]

log = logging.getLogger(__name__)

POLL_MS = 100
MAX_POLL_RECORDS = 20_000
#: How many more objects may be made than freed before the cyclic collector's youngest
#: generation is collected (Python's default is 700): well above a consume's messages.
GC_YOUNG_OBJECTS = 10 * MAX_POLL_RECORDS


class CommitClock:
    """When a worker's next commit is due: on the wall clock's ticks of the commit interval,
    ``phase`` of an interval after them. Map workers commit on the ticks (phase 0) and reducers
    half an interval later (phase 0.5), so what every map worker committed at a tick is in
    every reducer's next transaction: a record's output is committed at most one and a half
    intervals, plus the commits' own time, after the record, where two stages committing each
    on its own clock would make it two intervals. The wall clocks of a cluster's nodes agree
    to milliseconds; a clock stepped back is caught by a commit at most an interval (on the
    monotonic clock) after the last. The next tick is counted from a commit's end: a commit
    that outlasts an interval is followed by the first tick after it, so a loaded worker commits
    less often (and emits each changed key fewer times) instead of back to back."""

    def __init__(self, interval_s: float, phase: float = 0.0) -> None:
        self.interval, self.offset = interval_s, phase * interval_s
        self.committed()

    def committed(self) -> None:
        """A commit ended: the next is due at the next tick."""
        self._last = time.monotonic()
        now = time.time()
        self._tick = now - (now - self.offset) % self.interval + self.interval

    def due(self) -> bool:
        return time.time() >= self._tick or time.monotonic() - self._last >= self.interval

    def poll_s(self, longest: float = POLL_MS / 1000) -> float:
        """How long a poll may wait: ``longest``, or less, to the next tick."""
        return max(0.0, min(longest, self._tick - time.time()))


def configure_logs() -> None:
    """The Kafka clients log every rebalance and retry: what a user must know reaches them as
    errors. With ``--debug`` (``MRKAFKA_DEBUG``) a worker logs its sessions and retries, and
    its clients what they do (librdkafka: its group and transactions), to the run's output."""
    if os.environ.get("MRKAFKA_DEBUG"):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
        rdkafka.LOG.setLevel(logging.DEBUG)
        rdkafka.LOG.propagate = True


def group_consumer(config: StreamConfig, group_id: str) -> tuple[Consumer, Watch]:
    """A librdkafka consumer in group ``group_id``: read_committed, cooperative rebalancing,
    committing only when told, from the earliest offset it has none for. A short session and
    heartbeat make rebalances (a worker joining, restarted, leaving) quick."""
    watch = Watch(config.bootstrap, config.security)
    consumer = Consumer(
        {
            **rdkafka.settings(config.bootstrap, watch),
            "group.id": group_id,
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": int(application.SESSION_TIMEOUT_S * 1000),
            "heartbeat.interval.ms": 500,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            **rdkafka.FETCH,
        }
    )
    return consumer, watch


def worker_outbox(config: StreamConfig, name: str) -> Outbox:
    """Worker ``name``'s outbox: its one producer, transactional with the id ``APP-name`` under
    exactly once, retrying a batch for up to the task timeout."""
    settings = rdkafka.settings(config.bootstrap, Watch(config.bootstrap, config.security))
    transactional_id = f"{config.application_id}-{name}" if config.exactly_once else None
    timeout = config.settings.task_timeout_s

    def producer() -> Producer:
        return transactional_producer(
            settings, transactional_id, timeout, config.transaction_timeout_ms, MAX_MESSAGE_BYTES
        )

    return Outbox(producer(), config.exactly_once, timeout, successor=producer)


def supervise(
    who: str,
    session: Callable[[Backoff], None],
    abort: Callable[[], None],
    config: StreamConfig,
    stopped: threading.Event,
    counters: Counters,
) -> None:
    """Run ``session`` until it returns, starting a new one after each retriable failure (each
    in the calling thread: librdkafka's calls block, so a worker's sessions run in a thread
    of their own)."""
    backoff = Backoff(who, config.settings.task_timeout_s)
    # What the worker holds by now (Ray, pyarrow, numba, the job: most of its heap) lives as
    # long as it does: out of the cyclic collector's sight, a collection walks only what the
    # sessions made. A consume makes an object per message, up to MAX_POLL_RECORDS of them, and
    # frees them all together: with the young generation larger than that, most are freed
    # before any collection walks them. Collections took a fifth of a map worker's time before
    # the freeze, and a tenth with the freeze alone.
    gc.freeze()
    gc.set_threshold(GC_YOUNG_OBJECTS)
    while not stopped.is_set():
        try:
            session(backoff)
            return
        except Exception as exc:
            if _retry(who, exc, abort, config, counters) == RETRIABLE:
                backoff.sleep(exc)


def _retry(who: str, exc: Exception, abort: Callable[[], None], config: StreamConfig, counters: Counters) -> str:
    """After a session failed with ``exc``: raise it if it is fatal (as one line naming
    ``who``); else ``abort`` what was not committed, count the retry, and return its class."""
    error_class = classify(exc)
    if error_class == FATAL:
        raise _fatal(who, exc, config) from exc
    abort()
    counters.add((RETRIES, error_class), 1)
    log.info("%s: %s (%s); starting again from the last commit", who, error_class, describe(exc))
    return error_class


def _fatal(who: str, exc: Exception, config: StreamConfig) -> Exception:
    """The error a fatal ``exc`` ends the run with: one line that names ``who``."""
    if isinstance(exc, KafkaException):
        error = exc.args[0]
        transactional = error.code() == RdKafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        name = f"{config.application_id}-* (prefixed)" if transactional else ""
        operation, resource = ("WRITE", "transactional-id") if transactional else ("READ", "topic")
        translated = Watch(config.bootstrap, config.security).translate(
            error, operation, resource, name, "Kafka refused"
        )
        return type(translated)(f"{who}: {translated}")
    if isinstance(exc, KafkaError) and not str(exc).startswith(who):
        return type(exc)(f"{who}: {exc}")
    return exc
