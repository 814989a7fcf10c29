"""Starting and stopping aiokafka clients, classifying their errors, retrying, and writing:
``BatchSender`` batches records to explicit partitions, and ``Outbox`` commits a task's
records with its input offsets (one transaction under exactly once).

Errors are classified as Kafka Streams does: *retriable* (the broker or a leader is away
for a while: back off and retry), *task migrated* (the consumer group took a partition
away: drop uncommitted work and rejoin) and *fatal* (authorization, a record too large, a
wrong configuration: stop with one line). ``Backoff`` retries until ``task_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import struct
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from aiokafka import errors as kerrors
from aiokafka.conn import create_conn

from mrkafka.errors import AuthenticationError, AuthorizationError, KafkaError, TransientKafkaError
from mrkafka.kafka.security import PLAINTEXT, ClientSecurity

__all__ = [
    "CONNECT_TIMEOUT",
    "FATAL",
    "MIGRATED",
    "RETRIABLE",
    "Backoff",
    "BatchSender",
    "Outbox",
    "authenticate",
    "classify",
    "close_quietly",
    "denied",
    "describe",
    "start",
    "started",
]

log = logging.getLogger(__name__)

RETRIABLE, MIGRATED, FATAL = "retriable", "task migrated", "fatal"
_MIGRATED = (
    kerrors.CommitFailedError,
    kerrors.IllegalGenerationError,
    kerrors.UnknownMemberIdError,
    kerrors.RebalanceInProgressError,
    kerrors.ProducerFenced,
    kerrors.IllegalStateError,  # e.g. a position asked for a partition no longer assigned
)
_RETRIABLE = (
    kerrors.KafkaTimeoutError,
    kerrors.KafkaConnectionError,
    kerrors.NodeNotReadyError,
    kerrors.RequestTimedOutError,
    kerrors.ConsumerStoppedError,
    TransientKafkaError,
    asyncio.TimeoutError,
    ConnectionError,
)

CONNECT_TIMEOUT = 10.0
C = TypeVar("C")
#: aiokafka's authorization failures, and the kind of resource each names.
_DENIED = {
    kerrors.TopicAuthorizationFailedError: "topic",
    kerrors.GroupAuthorizationFailedError: "group",
    kerrors.ClusterAuthorizationFailedError: "cluster",
    kerrors.TransactionalIdAuthorizationFailed: "transactional-id",
}
_AUTHENTICATION = (
    kerrors.SaslAuthenticationFailed,
    kerrors.IllegalSaslStateError,
    kerrors.UnsupportedSaslMechanismError,
    kerrors.AuthenticationFailedError,
)


def denied(exc: BaseException, operation: str, name: str = "") -> AuthorizationError | None:
    """The ``AuthorizationError`` an aiokafka authorization failure is, naming ``operation`` on
    the resource (``name``, or what the error names); ``None`` for any other error."""
    for error_type, resource in _DENIED.items():
        if isinstance(exc, error_type):
            if not name and resource != "cluster":
                detail = str(exc).split(": ", 1)[-1] if ": " in str(exc) else ""
                name = detail.strip("{}' ").replace("'", "")
            return AuthorizationError.denied(operation, resource, name if resource != "cluster" else "")
    return None


def classify(exc: BaseException) -> str:
    """``RETRIABLE``, ``MIGRATED`` or ``FATAL`` (see the module docstring)."""
    if isinstance(exc, (*_DENIED, *_AUTHENTICATION, AuthorizationError, AuthenticationError)):
        return FATAL
    if isinstance(exc, _MIGRATED):
        return MIGRATED
    if isinstance(exc, _RETRIABLE) or (isinstance(exc, kerrors.KafkaError) and exc.retriable):
        return RETRIABLE
    if type(exc) is kerrors.KafkaError and exc.__cause__ is not None:
        # aiokafka's producer wraps what ended its sender routine ("Unexpected error during
        # batch delivery"; seen after a broker outage of a minute): that producer is done for,
        # and a new session with new clients goes on from the last commit.
        return RETRIABLE
    return FATAL


def describe(exc: BaseException) -> str:
    """``Name: message`` of a Kafka error, without aiokafka's ``[Error N]`` prefix and long texts."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if text.startswith("[Error"):  # "[Error 37] InvalidPartitionsError: detail"
        text = text.split("] ", 1)[-1]
        text = text.split(": ", 1)[1] if ": " in text else ""
    name = type(exc).__name__
    text = text.removeprefix(f"{name}: ")
    return f"{name}: {text}" if text and text != name else name


async def start(
    client: Any, bootstrap: str, timeout: float = CONNECT_TIMEOUT, security: ClientSecurity = PLAINTEXT
) -> None:
    """``await client.start()`` within ``timeout``, or one clear error (the client stopped):
    ``AuthenticationError`` with the reason when the broker answers but refuses the client."""
    try:
        await asyncio.wait_for(client.start(), timeout)
    except asyncio.TimeoutError as exc:  # nothing answered at all: no verdict on the client to learn
        await close_quietly(client)
        raise TransientKafkaError.unavailable(bootstrap) from exc
    except (kerrors.KafkaConnectionError, OSError, *_AUTHENTICATION) as exc:
        await close_quietly(client)
        await authenticate(bootstrap, security, min(timeout, CONNECT_TIMEOUT))
        raise TransientKafkaError.unavailable(bootstrap) from exc
    except BaseException:
        await close_quietly(client)
        raise


async def authenticate(bootstrap: str, security: ClientSecurity, timeout: float = CONNECT_TIMEOUT) -> None:
    """Connect to the first broker of ``bootstrap`` that listens, as ``security`` says, and raise
    ``AuthenticationError`` with the reason if it refuses; return if it accepts, or none listens.

    aiokafka logs why a connection failed and reports only that it could not bootstrap; this
    makes connections of its own to learn the reason: a TLS handshake and a first request (a
    refused client certificate shows only there, as an alert), then a SASL login."""
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        tls = security.ssl_context() or _any_tls()
        try:
            reason = await asyncio.wait_for(_first_request(host, int(port), tls), timeout)
        except ConnectionRefusedError:
            continue  # nothing listens there
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            if security.tls and await _answers_plaintext(host, int(port)):
                raise AuthenticationError(
                    f"authentication failed at {address}: the broker does not speak TLS there (security.protocol)"
                ) from None
            continue
        if reason is not None and security.tls:
            raise AuthenticationError(f"authentication failed at {address}: {security.refused(reason)}")
        if not security.tls and (reason is None or "alert" in reason.lower()):  # a TLS answer, or a TLS alert
            raise AuthenticationError(
                f"authentication failed at {address}: the broker expects TLS; set "
                "security.protocol in the --command-config file"
            )
        if security.sasl:
            try:
                conn = await asyncio.wait_for(
                    create_conn(host, int(port), request_timeout_ms=int(timeout * 1000), **security.aiokafka_options()),
                    timeout,
                )
            except _AUTHENTICATION as exc:
                raise AuthenticationError(f"authentication failed at {address}: {security.refused(str(exc))}") from None
            except (OSError, asyncio.TimeoutError, kerrors.KafkaError):
                continue
            conn.close()
        return


#: An ApiVersions request (v0, correlation id 1, client id "mrkafka"): every listener answers it before any login.
_API_VERSIONS = struct.pack(">ihhih", 17, 18, 0, 1, 7) + b"mrkafka"


def _any_tls() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


async def _answers_plaintext(host: str, port: int) -> bool:
    """Whether ``host:port`` answers a first request without TLS."""
    try:
        return await asyncio.wait_for(_first_request(host, port, None), CONNECT_TIMEOUT) is None
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
        return False


async def _first_request(host: str, port: int, context: ssl.SSLContext | None) -> str | None:
    """Send a first request (over TLS with ``context``); the TLS error's text, or ``None`` when
    the broker answered."""
    try:
        reader, writer = await asyncio.open_connection(host, port, ssl=context)
    except ssl.SSLError as exc:
        return str(exc)
    try:
        writer.write(_API_VERSIONS)
        await writer.drain()
        await reader.readexactly(4)
    except ssl.SSLError as exc:
        return str(exc)
    finally:
        writer.close()
    return None


async def close_quietly(client: Any) -> None:
    """Stop a client; an error while stopping never replaces the error that led here.

    aiokafka's consumer ``stop()`` can re-raise the cancellation of one of its own tasks
    (upstream issue aio-libs/aiokafka#647); only a cancellation of the caller is passed on."""
    try:
        await (client.stop() if hasattr(client, "stop") else client.close())
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
    except Exception as exc:
        log.debug("closing %s failed: %r", type(client).__name__, exc)


@asynccontextmanager
async def started(
    client: C, bootstrap: str, timeout: float = CONNECT_TIMEOUT, security: ClientSecurity = PLAINTEXT
) -> AsyncIterator[C]:
    """The client, started (see ``start``), and stopped on the way out."""
    await start(client, bootstrap, timeout, security)
    try:
        yield client
    finally:
        await close_quietly(client)


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

    async def wait(self, exc: BaseException) -> None:
        await asyncio.sleep(self.delay(exc))

    def sleep(self, exc: BaseException) -> None:
        time.sleep(self.delay(exc))


class BatchSender:
    """Appends records to per-partition batches and sends each batch when it is full.

    Records go to explicit partitions, so the caller's partitioner decides placement.
    ``flush`` sends what is left, waits until the broker acknowledged everything, and says
    at which offset the last record of each partition landed.
    """

    MAX_PENDING = 64  # batches sent but not yet acknowledged before appending waits

    def __init__(self, producer: Any) -> None:
        self.producer = producer
        self._batches: dict[tuple[str, int], Any] = {}
        self._pending: list[tuple[asyncio.Future, int]] = []  # (acknowledgement, records in the batch)
        self._last: dict[tuple[str, int], int] = {}

    async def append(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        timestamp: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        slot = (topic, partition)
        while True:
            batch = self._batches.get(slot)
            if batch is None:
                batch = self._batches[slot] = self.producer.create_batch()
            if batch.append(key=key, value=value, timestamp=timestamp, headers=headers or []) is not None:
                return
            await self._send(slot)  # full (an empty batch takes a record of any size)

    async def _send(self, slot: tuple[str, int]) -> None:
        batch = self._batches.pop(slot)
        topic, partition = slot
        count = batch.record_count()
        self._pending.append((await self.producer.send_batch(batch, topic, partition=partition), count))
        if len(self._pending) >= self.MAX_PENDING:
            future, count = self._pending.pop(0)
            self._acknowledged(future, count, await future)

    def _acknowledged(self, future: asyncio.Future, count: int, metadata: Any) -> None:
        slot = (metadata.topic, metadata.partition)
        self._last[slot] = max(self._last.get(slot, -1), metadata.offset + count - 1)

    async def flush(self) -> dict[tuple[str, int], int]:
        """Send every open batch and wait for all acknowledgements; return the offset of the
        last record written to each ``(topic, partition)`` since the previous flush."""
        for slot in list(self._batches):
            await self._send(slot)
        pending, self._pending = self._pending, []
        for (future, count), metadata in zip(pending, await asyncio.gather(*(f for f, _ in pending))):
            self._acknowledged(future, count, metadata)
        last, self._last = self._last, {}
        return last

    def discard(self) -> None:
        """Forget open batches and stop waiting for sent ones (after a failure: nothing is committed)."""
        self._batches.clear()
        for future, _ in self._pending:
            if future.done():
                future.exception()  # retrieved, so that asyncio does not log it
            else:
                future.cancel()
        self._pending, self._last = [], {}


class Outbox(BatchSender):
    """A task's output records and the input position they account for, committed as one unit.

    Exactly once (``producer`` is transactional): the first append begins a Kafka
    transaction; ``commit`` adds the input offsets to it (group ``group_id``) and commits, so
    read_committed readers see the records and the offsets move together, or neither. At
    least once: ``commit`` has ``consumer`` commit the offsets after the records were
    flushed; a crash between the two replays input whose output is already written.
    Call ``flush`` before ``commit`` (it says where the records landed).
    """

    def __init__(self, producer: Any, group_id: str, consumer: Any, exactly_once: bool) -> None:
        super().__init__(producer)
        self.group_id, self.consumer, self.exactly_once = group_id, consumer, exactly_once
        self._open = False  # a transaction is open
        self.committed_at = time.monotonic()  # when it last committed something (or was made)
        self.offsets: dict[Any, int] = {}  # the offsets it committed last

    async def append(self, *args: Any, **kwargs: Any) -> None:
        await self._begin()
        await super().append(*args, **kwargs)

    async def _begin(self) -> None:
        if self.exactly_once and not self._open:
            await self.producer.begin_transaction()
            self._open = True

    async def commit(self, offsets: dict[Any, int]) -> bool:
        """Commit the flushed records with ``offsets`` (``{TopicPartition: next offset}``);
        whether there was anything to commit (a transaction, or offsets)."""
        if not self.exactly_once:
            if offsets:
                await self.consumer.commit(offsets)
                self._committed(offsets)
            return bool(offsets)
        if offsets:
            await self._begin()
            await self.producer.send_offsets_to_transaction(offsets, self.group_id)
        if not self._open:
            return False
        await self.producer.commit_transaction()
        self._open = False
        self._committed(offsets)
        return True

    def _committed(self, offsets: dict[Any, int]) -> None:
        self.committed_at = time.monotonic()
        if offsets:
            self.offsets = dict(offsets)

    async def abort(self, timeout: float = 2.0) -> bool:
        """Drop what was appended since the last commit. An open transaction is aborted if the
        producer still can (a fenced one cannot) and the broker answers within ``timeout``; if
        not, the task's next producer aborts it as it starts, or the broker once it timed out.
        Returns whether this aborted a transaction."""
        self.discard()
        if not self._open:
            return False
        self._open = False
        try:
            await asyncio.wait_for(self.producer.abort_transaction(), timeout)
        except Exception as exc:  # an abort that fails must not replace the error that led here
            log.debug("aborting a transaction failed: %r", exc)
            return False
        return True
