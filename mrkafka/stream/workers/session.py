"""What both kinds of worker share: their Kafka clients, a Kafka call bounded by the task
timeout, and the supervision that starts a new session after a retriable failure."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.errors import TransactionalIdAuthorizationFailed

from mrkafka.core.counters import RETRIES, Counters
from mrkafka.errors import KafkaError
from mrkafka.kafka.client import FATAL, RETRIABLE, Backoff, classify, denied, describe
from mrkafka.stream.config import MAX_MESSAGE_BYTES, StreamConfig

__all__ = ["MAX_POLL_RECORDS", "POLL_MS", "call", "configure_logs", "new_consumer", "new_producer", "supervise"]

log = logging.getLogger(__name__)

POLL_MS = 100
MAX_POLL_RECORDS = 20_000


def configure_logs() -> None:
    """aiokafka logs every rebalance and retry: what a user must know reaches them as errors.
    With ``--debug`` (``MRKAFKA_DEBUG``) a worker logs its sessions and retries, and aiokafka
    what it does, to the run's output."""
    if os.environ.get("MRKAFKA_DEBUG"):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
        logging.getLogger("aiokafka").setLevel(logging.INFO)
    else:
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def new_consumer(config: StreamConfig, group_id: str | None, **options: Any) -> AIOKafkaConsumer:
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


def new_producer(config: StreamConfig, task: str) -> AIOKafkaProducer:
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


async def call(awaitable: Awaitable[Any], config: StreamConfig, what: str) -> Any:
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
    asyncio.get_running_loop().set_exception_handler(orphaned_kafka_errors_quiet)
    backoff = Backoff(who, config.settings.task_timeout_s)
    while not stopped.is_set():
        try:
            await session(backoff)
            return
        except Exception as exc:
            error_class = classify(exc)
            if error_class == FATAL:
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
            counters.add((RETRIES, error_class), 1)
            log.info("%s: %s (%s); starting again from the last commit", who, error_class, describe(exc))
            if error_class == RETRIABLE:
                await backoff.wait(exc)


def orphaned_kafka_errors_quiet(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
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
