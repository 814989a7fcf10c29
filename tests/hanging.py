"""Hanging transactions on a real broker, made on purpose.

A transaction hangs in a partition when the partition holds a producer's transactional
records and no marker ends them: read_committed readers stop at its first record for good.
Kafka 4.3 leaves one now and then around a lone broker's restart (KAFKA-20734), which no
test can bring about at will. The same state is made here as KIP-664 describes it: with the
broker's ``transaction.partition.verification.enable`` off, a transactional batch that the
transaction coordinator never heard of is appended as it comes. It is written in a running
worker's own name (its producer id, epoch and next sequence, read with Kafka's own
``kafka-transactions.sh describe-producers``), so the partition holds an open transaction of
that producer, as after KAFKA-20734. Batches are built and sent with kafka-python, a client
that is not the engine's.
"""

from __future__ import annotations

import subprocess
import time

from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource
from kafka.net.compat import KafkaNetClient
from kafka.protocol.producer.produce import ProduceRequest
from kafka.record.default_records import DefaultRecordBatchBuilder

from mrkafka.devtools.tools import tool_command


def allow_unverified_batches(bootstrap: str, node_id: int) -> None:
    """Turn off broker ``node_id``'s check that a transactional batch belongs to a transaction."""
    entry = ConfigEntry(
        "transaction.partition.verification.enable", "false", incremental_operation=AlterConfigOpType.SET
    )
    resource = ConfigResource(ConfigResource.Type.BROKER, str(node_id), incremental_configs=[entry])
    client = AdminClient({"bootstrap.servers": bootstrap})  # held until the answer: its end fails the call
    for future in client.incremental_alter_configs([resource]).values():
        future.result(timeout=30)


def _transactions_command(bootstrap: str, *args: str) -> list[dict[str, str]]:
    """The table that Kafka's TransactionsCommand prints, as one dict per row."""
    command = tool_command("org.apache.kafka.tools.TransactionsCommand", "--bootstrap-server", bootstrap, *args)
    lines = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout.splitlines()
    if not lines:
        return []
    header, rows = lines[0].split(), [line.split() for line in lines[1:] if line.strip()]
    return [dict(zip(header, row)) for row in rows]


def producers(bootstrap: str, topic: str, partition: int) -> list[dict[str, str]]:
    """The producers of a partition as ``kafka-transactions.sh describe-producers`` shows them:
    ProducerId, ProducerEpoch, LastSequence, CurrentTransactionStartOffset ("None": none open)."""
    return _transactions_command(bootstrap, "describe-producers", "--topic", topic, "--partition", str(partition))


def _append(
    bootstrap: str,
    leader: int,
    topic: str,
    partition: int,
    transactional_id: str,
    producer: tuple[int, int, int],
    key: bytes | None,
    headers: list[tuple[str, bytes]],
) -> int:
    """Append one transactional record without a value as ``producer`` (its id, epoch and the
    batch's sequence); its offset."""
    producer_id, epoch, sequence = producer
    batch = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=True,
        producer_id=producer_id,
        producer_epoch=epoch,
        base_sequence=sequence,
        batch_size=1 << 16,
    )
    batch.append(0, int(time.time() * 1000), key, None, headers)
    data = ProduceRequest.TopicProduceData.PartitionProduceData(index=partition, records=bytes(batch.build()))
    request = ProduceRequest(
        transactional_id=transactional_id,
        acks=-1,
        timeout_ms=10_000,
        topic_data=[ProduceRequest.TopicProduceData(name=topic, partition_data=[data])],
        version=8,
    )
    client = KafkaNetClient(bootstrap_servers=bootstrap, client_id="hanging")
    try:
        client.check_version()
        (answer,) = client.send_and_receive(leader, request).responses[0].partition_responses
    finally:
        client.close()
    assert answer.error_code == 0, answer
    return answer.base_offset


def leave_open(
    bootstrap: str,
    leader: int,
    topic: str,
    partition: int,
    transactional_id: str,
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> int:
    """Leave a transaction of the producer ``transactional_id`` open in ``topic`` ``partition``
    (on broker ``leader``): one record with ``key`` and ``headers`` and no value (a compacted
    topic needs a key); the offset where the transaction starts.

    The producer must be initialized (a transactional id the coordinator knows) and idle in the
    partition. A transaction of its own that it commits between the look and the append takes
    the record in (or makes it a duplicate): then the look and the append are tried again."""
    (described,) = _transactions_command(bootstrap, "describe", "--transactional-id", transactional_id)
    pid, epoch = described["ProducerId"], int(described["ProducerEpoch"])
    for _ in range(5):
        rows = [row for row in producers(bootstrap, topic, partition) if row["ProducerId"] == pid]
        if not rows or rows[0]["CurrentTransactionStartOffset"] == "None":
            # A producer's first batch in a partition has sequence 0.
            sequence = int(rows[0]["LastSequence"]) + 1 if rows else 0
            producer = (int(pid), int(rows[0]["ProducerEpoch"]) if rows else epoch, sequence)
            offset = _append(bootstrap, leader, topic, partition, transactional_id, producer, key, headers or [])
            if open_transactions(bootstrap, topic, partition).get(pid) == offset:
                return offset
        time.sleep(0.5)
    raise AssertionError(f"no transaction of {transactional_id} could be left open in {topic} partition {partition}")


def open_transactions(bootstrap: str, topic: str, partition: int) -> dict[str, int]:
    """The producers with a transaction open in a partition, and the offset where it starts."""
    starts = {r["ProducerId"]: r["CurrentTransactionStartOffset"] for r in producers(bootstrap, topic, partition)}
    return {pid: int(start) for pid, start in starts.items() if start != "None"}


def abort(bootstrap: str, topic: str, partition: int, start: int) -> None:
    """End the transaction open at ``start`` with ``kafka-transactions.sh abort``, as an operator would."""
    args = ("abort", "--topic", topic, "--partition", str(partition), "--start-offset", str(start))
    _transactions_command(bootstrap, *args)
