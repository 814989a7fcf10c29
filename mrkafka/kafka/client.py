"""How the stream engine meets Kafka's failures: errors classified as Kafka Streams does,
*retriable* (the broker or a leader is away for a while: back off and retry), *task
migrated* (the consumer group took a partition away, or another instance fenced the
producer: drop uncommitted work and rejoin) and *fatal* (authorization, a record too large,
a wrong configuration: stop with one line); and ``Backoff``, which retries until
``task_timeout``. The clients themselves are librdkafka's (``mrkafka.kafka.rdkafka``,
``mrkafka.kafka.outbox``).
"""

from __future__ import annotations

import random
import time

from confluent_kafka import KafkaException

from mrkafka.errors import AuthenticationError, AuthorizationError, KafkaError, TransientKafkaError
from mrkafka.kafka.rdkafka import error_class

__all__ = ["FATAL", "MIGRATED", "RETRIABLE", "Backoff", "TaskMigrated", "classify", "describe"]

RETRIABLE, MIGRATED, FATAL = "retriable", "task migrated", "fatal"


class TaskMigrated(Exception):
    """The consumer group took a worker's partitions away without a revocation (its session
    expired): what it had not committed is dropped, and a new session rejoins."""


def classify(exc: BaseException) -> str:
    """``RETRIABLE``, ``MIGRATED`` or ``FATAL`` (see the module docstring)."""
    if isinstance(exc, KafkaException):
        return error_class(exc.args[0])
    if isinstance(exc, TaskMigrated):
        return MIGRATED
    if isinstance(exc, (AuthorizationError, AuthenticationError)):
        return FATAL
    if isinstance(exc, (TransientKafkaError, TimeoutError, ConnectionError)):
        return RETRIABLE
    return FATAL


def describe(exc: BaseException) -> str:
    """``NAME: message`` of a librdkafka error; ``Type: message`` of any other."""
    if isinstance(exc, KafkaException):
        return f"{exc.args[0].name()}: {exc.args[0].str()}"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Backoff:
    """Exponential backoff with jitter for retriable errors, for at most ``timeout`` seconds
    from the first failure since the last ``reset`` (Kafka Streams' ``task.timeout.ms``)."""

    def __init__(self, who: str, timeout: float, first: float = 0.1, most: float = 5.0) -> None:
        self.who, self.timeout, self.first, self.most = who, timeout, first, most
        self.failures = 0
        self._since: float | None = None

    def reset(self) -> None:
        self.failures, self._since = 0, None

    def delay(self, exc: BaseException) -> float:
        """How long to wait before retrying; a ``KafkaError`` once ``timeout`` has passed."""
        now = time.monotonic()
        if self._since is None:
            self._since = now
        if now - self._since >= self.timeout:
            # The cause's own class where it is one of ours (no broker at all: exit 8).
            error = type(exc) if isinstance(exc, KafkaError) else KafkaError
            detail = str(exc) if isinstance(exc, KafkaError) else describe(exc)
            raise error(
                f"{self.who}: Kafka failed for {now - self._since:.0f} s ({detail}); "
                "nothing committed is lost, a new run resumes from the last commit"
            ) from exc
        self.failures += 1
        return random.uniform(0.5, 1.0) * min(self.most, self.first * 2 ** (self.failures - 1))

    def sleep(self, exc: BaseException) -> None:
        time.sleep(self.delay(exc))
