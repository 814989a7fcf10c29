"""What mrkafka's librdkafka clients (confluent-kafka) share: their settings, a watch on
librdkafka's error callback, the translation of its errors into mrkafka's, and two small
clients for the commands: ``Writer`` (acks=all, idempotent) and ``read_partition``.

librdkafka reports a refused login or every broker being down only through the error
callback, and goes on retrying: ``Watch`` remembers them so that a caller waiting on a
client can stop at once with one line (``AuthenticationError``, ``KafkaUnavailableError``).
Its errors become mrkafka's as ``Watch.translate`` says: an authorization failure names the
operation and resource (``AuthorizationError``); a topic that does not exist or already does
is a ``TopicError``; no broker answering is a ``KafkaUnavailableError``; any other error
librdkafka calls retriable (a leader moving, a coordinator loading) is a
``TransientKafkaError``, which callers may retry; the rest a ``KafkaError``.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import struct
import time
from collections.abc import Iterator
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka import KafkaError as RdKafkaError

from mrkafka.errors import AuthenticationError, AuthorizationError, KafkaError, TopicError, TransientKafkaError
from mrkafka.kafka.security import PLAINTEXT, ClientSecurity

__all__ = [
    "CONNECT_TIMEOUT",
    "FETCH",
    "LOG",
    "READER_GROUP",
    "Watch",
    "Writer",
    "consumer",
    "error_class",
    "read_partition",
    "settings",
    "unused_group",
]

CONNECT_TIMEOUT = 10.0

#: librdkafka logs every failed connection; what matters reaches the user as an error.
LOG = logging.getLogger("mrkafka.librdkafka")
LOG.addHandler(logging.NullHandler())
LOG.propagate = False

_AUTH_CODES = {RdKafkaError._AUTHENTICATION, RdKafkaError._SSL, RdKafkaError.SASL_AUTHENTICATION_FAILED}
_UNAVAILABLE_CODES = {RdKafkaError._TRANSPORT, RdKafkaError._TIMED_OUT, RdKafkaError._ALL_BROKERS_DOWN}
_DENIED_CODES = {
    RdKafkaError.TOPIC_AUTHORIZATION_FAILED: "topic",
    RdKafkaError.GROUP_AUTHORIZATION_FAILED: "group",
    RdKafkaError.CLUSTER_AUTHORIZATION_FAILED: "cluster",
    RdKafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: "transactional-id",
}
_NO_TOPIC_CODES = {RdKafkaError.UNKNOWN_TOPIC_OR_PART, RdKafkaError.UNKNOWN_TOPIC_ID}
#: Errors librdkafka does not flag retriable but that pass: a coordinator or a leader moving, loading.
_TRANSIENT_CODES = {
    RdKafkaError.NOT_COORDINATOR,
    RdKafkaError.COORDINATOR_NOT_AVAILABLE,
    RdKafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    RdKafkaError.NOT_LEADER_FOR_PARTITION,
    RdKafkaError.LEADER_NOT_AVAILABLE,
    RdKafkaError.REQUEST_TIMED_OUT,
    RdKafkaError._WAIT_COORD,
    RdKafkaError._TIMED_OUT_QUEUE,
    RdKafkaError._MSG_TIMED_OUT,
}
#: A group's coordinator or a transaction's refused this member or producer: its tasks moved on.
_MIGRATED_CODES = {
    RdKafkaError.ILLEGAL_GENERATION,
    RdKafkaError.UNKNOWN_MEMBER_ID,
    RdKafkaError.REBALANCE_IN_PROGRESS,
    RdKafkaError.FENCED_INSTANCE_ID,
    RdKafkaError.PRODUCER_FENCED,
    RdKafkaError.INVALID_PRODUCER_EPOCH,
    RdKafkaError._FENCED,
    RdKafkaError._ASSIGNMENT_LOST,
}


def error_class(error: RdKafkaError) -> str:
    """``"retriable"``, ``"task migrated"`` or ``"fatal"`` for a librdkafka error, as Kafka
    Streams classifies (``mrkafka.kafka.client.classify``): fenced or out of the group is a
    migration; an error librdkafka can retry, or one that only ends the transaction or the
    producer (a new session makes new ones), is retriable; authorization, authentication
    and a wrong configuration are fatal."""
    code = error.code()
    if code in _DENIED_CODES or code in _AUTH_CODES:
        return "fatal"
    if code in _MIGRATED_CODES:
        return "task migrated"
    transient = code in _UNAVAILABLE_CODES or code in _TRANSIENT_CODES
    if transient or error.retriable() or error.txn_requires_abort() or error.fatal():
        return "retriable"
    return "fatal"


class Watch:
    """librdkafka's error callback for one client (pass it as ``error_cb``): it remembers a
    refused login and every broker being down, which ``check`` then raises."""

    def __init__(self, bootstrap: str, security: ClientSecurity = PLAINTEXT) -> None:
        self.bootstrap, self.security = bootstrap, security
        self.refusals: list[str] = []
        self.all_down = False

    def __call__(self, error: RdKafkaError) -> None:
        text = error.str()
        if error.code() in _AUTH_CODES or error.code() == RdKafkaError._TRANSPORT and "SSL" in text:
            self.refusals.append(self.security.refused(text))
        elif error.code() == RdKafkaError._ALL_BROKERS_DOWN:
            self.all_down = True

    def clear(self) -> None:
        self.refusals.clear()
        self.all_down = False

    def check(self, unavailable: bool = True) -> None:
        """Raise what the callback saw since ``clear``: a refused login, or (if ``unavailable``)
        no broker up."""
        if self.refusals:
            raise self._refused()
        if unavailable and self.all_down:
            raise self.unavailable()

    def unavailable(self) -> KafkaError:
        """No broker answers: or one does, and refuses this client (``probe`` says why)."""
        return probe(self.bootstrap, self.security) or TransientKafkaError.unavailable(self.bootstrap)

    def _refused(self) -> AuthenticationError:
        return AuthenticationError(f"authentication failed at {self.bootstrap}: {self.refusals[-1]}")

    def translate(
        self,
        error: RdKafkaError,
        operation: str = "DESCRIBE",
        resource: str = "cluster",
        name: str = "",
        action: str = "",
    ) -> KafkaError:
        """mrkafka's error for librdkafka's ``error`` (see the module docstring); ``operation`` on
        ``resource`` ``name`` is what an authorization failure names, and ``action`` (``cannot
        create topic t``) begins the message of an error of no kind above."""
        if self.refusals:
            return self._refused()
        code = error.code()
        if code in _DENIED_CODES:
            kind = _DENIED_CODES[code]
            return AuthorizationError.denied(operation, kind, name if kind == resource else "")
        if code in _NO_TOPIC_CODES and resource == "topic":
            return TopicError(f"topic {name} does not exist")
        if code == RdKafkaError.TOPIC_ALREADY_EXISTS:
            return TopicError(f"topic {name} already exists")
        if code in _UNAVAILABLE_CODES:
            return self.unavailable()
        text = f"{action}: {error.str()}" if action else f"{error.name()}: {error.str()}"
        return TransientKafkaError(text) if error.retriable() or code in _TRANSIENT_CODES else KafkaError(text)


#: An ApiVersions request (v0, correlation id 1, client id "mrkafka"): every listener answers it before any login.
_API_VERSIONS = struct.pack(">ihhih", 17, 18, 0, 1, 7) + b"mrkafka"


def probe(bootstrap: str, security: ClientSecurity, timeout: float = CONNECT_TIMEOUT) -> AuthenticationError | None:
    """Why the first broker of ``bootstrap`` that listens refuses a client of ``security`` at the
    TLS level, or ``None`` (it accepts, or none listens).

    librdkafka reports only that no broker is up when the TLS handshake fails one way or the
    other; this makes a connection of its own to learn the reason: a TLS handshake and a first
    request (a refused client certificate shows only there, as an alert). A refused SASL login
    librdkafka does report (``Watch``)."""
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            reason = _first_request(host, int(port), security.ssl_context() or _any_tls(), timeout)
        except ConnectionRefusedError:
            continue  # nothing listens there
        except OSError:
            if security.tls and _answers_plaintext(host, int(port), timeout):
                return AuthenticationError(
                    f"authentication failed at {address}: the broker does not speak TLS there (security.protocol)"
                )
            continue
        if reason is not None and security.tls:
            return AuthenticationError(f"authentication failed at {address}: {security.refused(reason)}")
        if not security.tls and (reason is None or "alert" in reason.lower()):  # a TLS answer, or a TLS alert
            return AuthenticationError(
                f"authentication failed at {address}: the broker expects TLS; set "
                "security.protocol in the --command-config file"
            )
        return None
    return None


def _any_tls() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


def _answers_plaintext(host: str, port: int, timeout: float) -> bool:
    """Whether ``host:port`` answers a first request without TLS."""
    try:
        return _first_request(host, port, None, timeout) is None
    except OSError:
        return False


def _first_request(host: str, port: int, context: ssl.SSLContext | None, timeout: float) -> str | None:
    """Send a first request (over TLS with ``context``); the TLS error's text, or ``None`` when
    the broker answered. ``OSError`` when the connection fails otherwise."""
    with socket.create_connection((host, port), timeout=timeout) as raw:
        try:
            conn = context.wrap_socket(raw, server_hostname=host) if context is not None else raw
            conn.sendall(_API_VERSIONS)
            if len(conn.recv(4)) < 4:
                raise ConnectionResetError("closed before answering")
        except ssl.SSLError as exc:
            return str(exc)
    return None


def settings(bootstrap: str, watch: Watch, timeout: float = CONNECT_TIMEOUT) -> dict[str, Any]:
    """A client's settings: the cluster, its security, ``watch`` as the error callback; with
    ``MRKAFKA_DEBUG`` set, librdkafka logs what its groups and transactions do to ``LOG``."""
    settings = {
        "bootstrap.servers": bootstrap,
        **watch.security.confluent_options(),
        "error_cb": watch,
        "logger": LOG,
        "socket.connection.setup.timeout.ms": int(timeout * 1000),
        "reconnect.backoff.max.ms": 1000,  # back at once after a broker's restart
    }
    if os.environ.get("MRKAFKA_DEBUG"):
        settings["debug"] = "cgrp,eos"
    return settings


class Writer:
    """A producer to explicit partitions, acks=all and idempotent, that raises the first
    failed delivery (translated) instead of going on."""

    def __init__(
        self, bootstrap: str, security: ClientSecurity = PLAINTEXT, max_bytes: int = 1 << 20, timeout: float = 60.0
    ) -> None:
        self.watch = Watch(bootstrap, security)
        self.timeout = timeout
        self._failed: list[RdKafkaError] = []
        self._producer = Producer(
            {
                **settings(bootstrap, self.watch),
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                "batch.size": 1 << 20,
                "message.max.bytes": max(max_bytes, 1 << 20),
                "message.timeout.ms": int(timeout * 1000),
                "delivery.report.only.error": True,
                "on_delivery": self._delivered,
            }
        )

    def _delivered(self, error: RdKafkaError | None, _message: Any) -> None:
        if error is not None:
            self._failed.append(error)

    def _check(self, topic: str) -> None:
        self.watch.check()
        if self._failed:
            raise self.watch.translate(self._failed[0], "WRITE", "topic", topic, f"writing to topic {topic} failed")

    def write(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        """Queue one record; waits while librdkafka's queue is full."""
        while True:
            try:
                self._producer.produce(topic, value, key, partition)  # by position: see Outbox
                return
            except BufferError:
                self._producer.poll(0.05)
                self._check(topic)

    def flush(self, topic: str) -> None:
        """Wait until every queued record is acknowledged; raise the first that failed."""
        deadline = time.monotonic() + self.timeout
        while self._producer.flush(0.1):
            self._check(topic)
            if time.monotonic() > deadline:
                raise TransientKafkaError.unavailable(self.watch.bootstrap)
        self._check(topic)


#: A consumer's fetching: large fetches and a deep prefetch queue. librdkafka's defaults
#: (1 MiB per partition, a queue of 100,000 messages) read 32 MiB of text lines at a third
#: of the speed (measured: 848,005 records, 5.0 s against 1.65 s).
FETCH = {"max.partition.fetch.bytes": 16 << 20, "fetch.max.bytes": 64 << 20, "queued.min.messages": 1_000_000}

#: The group id of a consumer that only reads assigned partitions from given offsets.
READER_GROUP = "mrkafka-reader"


def consumer(
    bootstrap: str, security: ClientSecurity, isolation_level: str = "read_committed", group: str = READER_GROUP
) -> tuple[Consumer, Watch]:
    """A consumer for ``assign`` and ``committed``: it joins no group and commits nothing
    (librdkafka wants a group id all the same: the one whose offsets ``committed`` reads).

    librdkafka looks for the group's coordinator even so, and a principal that may not
    describe the group gets GROUP_AUTHORIZATION_FAILED among its messages: a reader of
    ``READER_GROUP`` skips it (``unused_group``), as it uses no group."""
    watch = Watch(bootstrap, security)
    client = Consumer(
        {
            **settings(bootstrap, watch),
            **FETCH,
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": isolation_level,
        }
    )
    return client, watch


def unused_group(error: RdKafkaError) -> bool:
    """Whether ``error`` is about the group a ``READER_GROUP`` consumer does not use."""
    return error.code() == RdKafkaError.GROUP_AUTHORIZATION_FAILED


def partitions(client: Consumer, watch: Watch, topic: str, timeout: float = CONNECT_TIMEOUT) -> list[int]:
    """The partitions of ``topic``; ``TopicError`` if it does not exist."""
    try:
        found = client.list_topics(topic, timeout=timeout).topics.get(topic)
    except KafkaException as exc:
        client.poll(0)  # serves error_cb: a refused login says why (nothing is assigned yet)
        watch.check()
        raise watch.translate(exc.args[0], "DESCRIBE", "topic", topic) from None
    if found is None or found.error is not None:
        error = found.error if found is not None else None
        if error is None or error.code() in _NO_TOPIC_CODES:
            raise TopicError(f"topic {topic} does not exist")
        raise watch.translate(error, "DESCRIBE", "topic", topic)
    return sorted(found.partitions)


def read_partition(
    bootstrap: str, topic: str, partition: int, security: ClientSecurity = PLAINTEXT, timeout: float = CONNECT_TIMEOUT
) -> Iterator[Any]:
    """Every committed record of one partition, from its beginning to its end as it is now."""
    client, watch = consumer(bootstrap, security)
    try:
        try:
            begin, end = client.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
        except KafkaException as exc:
            watch.check()
            raise watch.translate(exc.args[0], "READ", "topic", topic) from None
        if begin >= end:
            return
        where = TopicPartition(topic, partition, OFFSET_BEGINNING)
        client.assign([where])
        idle_since = time.monotonic()
        while True:
            message = client.poll(0.1)
            watch.check()
            if message is None:
                # Past the data there may be a transaction's marker: the position says when the end is reached.
                position = client.position([where])[0].offset
                if position >= end or time.monotonic() - idle_since > timeout:
                    return
                continue
            if message.error() is not None:
                if unused_group(message.error()):
                    continue
                raise watch.translate(message.error(), "READ", "topic", topic)
            idle_since = time.monotonic()
            yield message
            if message.offset() + 1 >= end:
                return
    finally:
        client.close()
