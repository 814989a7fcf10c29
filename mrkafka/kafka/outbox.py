"""A worker's output records and the input positions they account for, committed as one
unit through one librdkafka producer (Kafka Streams' exactly-once v2, KIP-447).

Exactly once (a ``transactional_id``): ``start`` runs ``init_transactions``, which fences
every older producer of the same id and aborts its open transaction; the first ``append``
begins a transaction; ``commit`` adds the input offsets (and what each offset's metadata
carries: the counts of the input up to it) with the consumer's group metadata
(``send_offsets_to_transaction``), so the group coordinator refuses them from a member of an
older generation (a worker that stalled past its session and whose partitions moved), then
commits. read_committed readers see the records and the offsets move together, or neither.
At least once: ``commit`` flushes, then the consumer commits the offsets synchronously; a
crash between the two replays input whose output is already written.

What the protocol relies on in librdkafka (confluent-kafka 2.x):

- ``produce`` only queues; it raises ``BufferError`` when the queue is full, and ``poll`` or
  ``flush`` serve the queue and the delivery reports. Its arguments are given by position
  (topic, value, key, partition, callback, on_delivery, timestamp, headers): parsing keyword
  arguments cost 0.6 us a call, a third of a record's whole cost to the producer. Delivery reports give each record's
  offset, so ``flush`` can say where the last record of each partition landed. Records of a
  partition are delivered in order (idempotence), so within a transaction only the last
  record of each partition in an ``append_all`` asks for its report: a report costs about a
  microsecond of Python a record, and the transaction itself reports a failed record (below).
  At least once, every record asks for its report: nothing else would tell of a failed one.
- A failed delivery inside a transaction makes ``commit_transaction`` fail with an error for
  which ``txn_requires_abort()`` holds, whether or not the record asked for its report
  (librdkafka counts the failures of the transaction); ``abort_transaction`` then drops the
  transaction's records, and the producer can begin another.
- The producer is idempotent: a batch retried after a broker's outage is written once.
- A fenced producer (another instance ran ``init_transactions``, or the coordinator aborted
  the transaction at its timeout) gets a fatal error: it can do nothing more, and the next
  session makes a new one.
- ``send_offsets_to_transaction`` with ``consumer_group_metadata()`` sends TxnOffsetCommit
  with the member's generation; the coordinator refuses a stale one (ILLEGAL_GENERATION,
  UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID). It can also wait for good, its timeout ignored,
  when the group's coordinator went down and came back during the transaction (librdkafka
  issues 5456 and 5511, open in 2.16; seen here after a lone broker's restart). So every
  transaction call is waited for at most ``COORDINATOR_WAIT_S``, in a thread of its own;
  then the producer is given up as a retriable failure.
- ``init_transactions`` of a new producer with the same transactional id bumps the id's
  epoch: the older producer is fenced, and its open transaction aborted at once. A given-up
  producer that cannot abort its transaction itself is fenced so by a successor (``abort``):
  left open, the transaction would hold every read_committed reader of its partitions (the
  reducers; the group's committed offsets) until the coordinator aborts it at its timeout.
- An offset committed in a transaction (or by the consumer) keeps the metadata string given with
  it, which the group's ``committed`` then returns; the broker refuses one longer than its
  ``offset.metadata.max.bytes`` (4096 by default) with OFFSET_METADATA_TOO_LARGE.
- A consumer with ``isolation.level=read_committed`` fetches committed offsets with
  RequireStable (KIP-447): while a transaction that holds offsets for a partition is open,
  the partition's new owner waits, and starts from where that transaction left it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import KafkaError as RdKafkaError
from confluent_kafka import KafkaException, Producer, TopicPartition

from mrkafka.errors import KafkaError, TransientKafkaError

__all__ = ["COORDINATOR_WAIT_S", "OFFSET_METADATA_BYTES", "Outbox", "transactional_producer"]

log = logging.getLogger(__name__)

#: The longest metadata string a broker takes with a committed offset, by default (see above).
OFFSET_METADATA_BYTES = 4096
#: How long ``send_offsets_to_transaction`` may take before its producer is given up (see above).
COORDINATOR_WAIT_S = 30.0


def transactional_producer(
    settings: dict[str, Any], transactional_id: str | None, timeout: float, transaction_timeout_ms: int, max_bytes: int
) -> Producer:
    """A producer for an ``Outbox``: acks=all, idempotent, retrying a batch for up to
    ``timeout``; transactional with ``transactional_id`` if one is given. ``settings``: the
    cluster and its security (``rdkafka.settings``)."""
    config = {
        **settings,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "batch.size": 1 << 20,
        "message.max.bytes": max_bytes,
        "message.timeout.ms": int(timeout * 1000),
    }
    if transactional_id is not None:
        config["transactional.id"] = transactional_id
        config["transaction.timeout.ms"] = transaction_timeout_ms
        config["message.timeout.ms"] = min(config["message.timeout.ms"], transaction_timeout_ms)
    return Producer(config)


class Outbox:
    """See the module docstring. ``producer``: a ``transactional_producer`` (transactional
    under ``exactly_once``); ``timeout``: how long a flush or a transaction call may wait out
    an outage (the task timeout); ``successor``: makes another producer of the same
    transactional id, which fences this one when it cannot abort (``abort``)."""

    def __init__(
        self, producer: Any, exactly_once: bool, timeout: float, successor: Callable[[], Any] | None = None
    ) -> None:
        self.producer, self.exactly_once, self.timeout = producer, exactly_once, timeout
        self._successor = successor  # another producer of the same transactional id
        self._open = False  # a transaction is open
        self._failed: list[RdKafkaError] = []
        self._last: dict[tuple[str, int], int] = {}
        self.committed_at = time.monotonic()  # when it last committed something (or was made)

    def start(self) -> None:
        """Fence the older producers of this id and abort their open transaction."""
        if self.exactly_once:
            self._guarded(self.producer.init_transactions, "the transaction coordinator did not answer")

    def _delivered(self, error: RdKafkaError | None, message: Any) -> None:
        if error is not None:
            self._failed.append(error)
            return
        slot = (message.topic(), message.partition())
        if message.offset() > self._last.get(slot, -1):
            self._last[slot] = message.offset()

    def append(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        timestamp: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Queue one record (in the open transaction, which it begins if none is)."""
        self._begin()
        while True:
            try:
                self.producer.produce(topic, value, key, partition, self._delivered, None, timestamp or 0, headers)
                return
            except BufferError:
                self.producer.poll(0.05)

    def append_all(
        self,
        topic: str,
        partitions: Iterable[int],
        keys: Iterable[bytes],
        values: Iterable[bytes | None],
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """``append`` of many records at once (record i: ``partitions[i]``, ``keys[i]``,
        ``values[i]``; all with ``headers``): one call where many are many Python calls.
        Within a transaction only each partition's last record asks for its delivery report
        (see the module docstring)."""
        self._begin()
        partitions = list(partitions)
        produce, delivered = self.producer.produce, self._delivered
        if self.exactly_once:
            reports: list = [None] * len(partitions)
            for last in {partition: i for i, partition in enumerate(partitions)}.values():
                reports[last] = delivered
        else:
            reports = [delivered] * len(partitions)
        for partition, key, value, report in zip(partitions, keys, values, reports):
            while True:
                try:
                    produce(topic, value, key, partition, report, None, 0, headers)
                    break
                except BufferError:
                    self.producer.poll(0.05)

    def _begin(self) -> None:
        if self.exactly_once and not self._open:
            self.producer.begin_transaction()
            self._open = True

    def flush(self) -> dict[tuple[str, int], int]:
        """Wait until the broker acknowledged every record; return the offset of the last record
        written to each ``(topic, partition)`` since the previous flush. A record that could not
        be written raises its error (``KafkaException``)."""
        deadline = time.monotonic() + self.timeout
        while self.producer.flush(0.1):
            if self._failed:
                break
            if time.monotonic() > deadline:
                raise KafkaError(
                    f"Kafka did not acknowledge records for {self.timeout:.0f} s; "
                    "nothing committed is lost, a new run resumes from the last commit"
                )
        if self._failed:
            raise KafkaException(self._failed[0])
        last, self._last = self._last, {}
        return last

    def commit(self, positions: list[TopicPartition], consumer: Any) -> bool:
        """Commit the flushed records with ``positions`` (each partition's next offset, and the
        metadata to commit with it) in ``consumer``'s group; whether there was anything to commit."""
        if not self.exactly_once:
            if positions:
                consumer.commit(offsets=positions, asynchronous=False)
                self.committed_at = time.monotonic()
            return bool(positions)
        if positions:
            self._begin()
            metadata = consumer.consumer_group_metadata()
            self._guarded(
                lambda wait: self.producer.send_offsets_to_transaction(positions, metadata, wait),
                "the group coordinator did not take the offsets",
            )
        if not self._open:
            return False
        self._guarded(self.producer.commit_transaction, "the transaction coordinator did not commit")
        self._open = False
        self.committed_at = time.monotonic()
        return True

    def _guarded(self, call: Callable[[float], None], what: str, wait: float | None = None) -> None:
        """``call(wait)``, a librdkafka transaction call, waited for at most ``wait`` (the task
        timeout, at most ``COORDINATOR_WAIT_S``) in a thread of its own: librdkafka may ignore
        its timeout (see the module docstring). Not done by then: ``TransientKafkaError``."""
        wait = min(self.timeout, COORDINATOR_WAIT_S) if wait is None else wait
        failed: list[BaseException] = []
        done = threading.Event()

        def run() -> None:
            try:
                call(wait)
            except BaseException as exc:
                failed.append(exc)
            finally:
                done.set()

        threading.Thread(target=run, name="mrkafka-transaction-call", daemon=True).start()
        if not done.wait(wait + 1.0):
            raise TransientKafkaError(
                f"{what} within {wait:.0f} s (librdkafka issues 5456, 5511); "
                "a new producer goes on from the last commit"
            )
        if failed:
            raise failed[0]

    def abort(self, timeout: float = 2.0) -> bool:
        """Drop what was appended since the last commit: abort the open transaction if the
        producer still can within ``timeout``. A fenced one cannot, and need not: a newer
        producer of its id, or the coordinator, ended the transaction. Any other failure: a
        successor of the same id fences it (``_fence``); with the cluster away, the session's
        next producer does, or the coordinator at the transaction's timeout. Returns whether
        this aborted a transaction."""
        self._failed.clear()
        self._last = {}
        if not self._open:
            self.producer.purge()
            return False
        self._open = False
        try:  # an abort that fails must not replace the error that led here
            self._guarded(self.producer.abort_transaction, "the transaction coordinator did not abort", timeout)
            return True
        except KafkaException as exc:
            log.debug("aborting a transaction failed: %r", exc)
            error = exc.args[0] if exc.args else None
            if isinstance(error, RdKafkaError) and error.fatal():
                return False
        except TransientKafkaError as exc:
            log.debug("aborting a transaction failed: %s", exc)
        return self._fence()

    def _fence(self) -> bool:
        """Abort the open transaction that this producer could not, through a successor of the
        same transactional id (its ``init_transactions`` fences this producer); whether it did."""
        if self._successor is None:
            return False
        successor = self._successor()
        try:
            self._guarded(successor.init_transactions, "the transaction coordinator did not fence")
        except (KafkaException, TransientKafkaError) as exc:  # the coordinator aborts it at the timeout
            log.debug("fencing a producer that could not abort failed: %s", exc)
            return False
        finally:
            successor.purge()
        log.info("a producer that could not abort its transaction was fenced, and the transaction aborted")
        return True

    def close(self) -> None:
        """Drop what is still queued, so that the producer goes at once when it is dropped."""
        try:
            self.producer.purge()
            self.producer.flush(0)
        except Exception as exc:  # closing must not replace the error that ended the session
            log.debug("closing a producer failed: %r", exc)
