"""``mrkafka produce`` and ``mrkafka consume``: what Kafka's console producer and consumer do."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

from mrkafka.core.partition import partition_for
from mrkafka.core.serdes import format_value
from mrkafka.errors import BadInputError
from mrkafka.io.splits import lines_array
from mrkafka.kafka import admin, rdkafka
from mrkafka.kafka.acl import check_access
from mrkafka.kafka.rdkafka import Watch, Writer
from mrkafka.kafka.security import PLAINTEXT, ClientSecurity
from mrkafka.obs.progress import Progress

__all__ = ["consume", "produce_lines"]

_READ_BYTES = 4 << 20
#: The broker's default message.max.bytes, the limit of a topic that does not set max.message.bytes.
BROKER_MAX_MESSAGE_BYTES = 1048588
#: What a record batch of one record adds to its key and value, at most (headers aside).
RECORD_OVERHEAD = 128


def _blocks(path: str) -> Iterator[bytes]:
    """The file in blocks of whole lines."""
    try:
        f = open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise BadInputError(f"cannot read {path}: {exc.strerror}") from exc
    with f:
        rest = b""
        while chunk := f.read(_READ_BYTES):
            chunk = rest + chunk
            cut = chunk.rfind(b"\n") + 1
            rest = chunk[cut:]
            if cut:
                yield chunk[:cut]
        if rest:
            yield rest


def _produce(
    bootstrap: str,
    topic: str,
    path: str,
    key_sep: bytes | None,
    key_field: int | None,
    partitions: int,
    progress: Progress,
    max_bytes: int,
    security: ClientSecurity,
) -> int:
    writer = Writer(bootstrap, security, max_bytes)
    written = 0
    round_robin = 0
    for block in _blocks(path):
        lines = lines_array(block).to_pylist()  # the lines _check_sizes measured
        if key_sep is None:
            keys: list[bytes | None] = [None] * len(lines)
            values = lines
            targets: list[int | None] = [None] * len(lines)
        elif key_field is not None:  # the key is one field; the value the whole line
            fields = [line.split(key_sep) for line in lines]
            keys = [f[key_field - 1] if len(f) >= key_field else None for f in fields]
            values = lines
        else:
            split = [line.partition(key_sep) for line in lines]
            keys = [k if sep else None for k, sep, _ in split]
            values = [v if sep else k for k, sep, v in split]
        if key_sep is not None:
            hashed = partition_for(pa.array([k or b"" for k in keys], pa.binary()), partitions).tolist()
            targets = [p if k is not None else None for p, k in zip(hashed, keys)]
        # No key: a block's records go to one partition, the next block's to the next.
        for key, value, target in zip(keys, values, targets):
            writer.write(topic, round_robin if target is None else target, key, value)
        round_robin = (round_robin + 1) % partitions
        written += len(lines)
        progress.advance(len(block), len(block))
    writer.flush(topic)
    return written


def produce_lines(
    bootstrap: str,
    topic: str,
    path: str,
    key_sep: str | None = None,
    progress: bool | None = None,
    key_field: int | None = None,
    security: ClientSecurity = PLAINTEXT,
) -> int:
    """Write one record per line of ``path`` (the line without its ending); return the count.

    With ``key_sep`` each line is split at its first separator into key and value; with
    ``key_field`` N as well, the key is the Nth separated field and the value the whole line.
    Keyed records go to the partition Kafka's default partitioner picks. ``acks=all``, idempotent.
    """
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise BadInputError(f"cannot read {path}: {exc.strerror}") from exc
    if key_field is not None and (not key_sep or key_field < 1):
        raise BadInputError("--key-field needs --key-sep, and counts from 1")
    sep = key_sep.encode() if key_sep else None
    check_access(bootstrap, security, topics={topic: ["WRITE"]})
    # A producer waits up to max.block.ms (a minute) for a topic that does not exist: ask first.
    info = admin.describe_topic(bootstrap, topic, security=security)
    limit = int(info.configs.get("max.message.bytes", BROKER_MAX_MESSAGE_BYTES))
    _check_sizes(path, limit - RECORD_OVERHEAD, 2 if key_field is not None else 1)
    with Progress(size, "producing", progress) as bar:
        return _produce(bootstrap, topic, path, sep, key_field, len(info.partitions), bar, limit, security)


def _check_sizes(path: str, most: int, factor: int) -> None:
    """Refuse, before writing anything, a file with a line too large for one record (the
    lengths of a block's lines measured at once, not line by line)."""
    number = 0
    for block in _blocks(path):
        lengths = np.asarray(pc.binary_length(lines_array(block)), dtype=np.int64)
        too_long = np.flatnonzero(lengths * factor > most)
        if too_long.size:
            first = int(too_long[0])
            raise BadInputError(
                f"{path}: line {number + first + 1} is {lengths[first]:,} bytes, more than a record of this topic "
                f"may hold ({most:,}; the topic's max.message.bytes): nothing was written"
            )
        number += len(lengths)


def _consume(
    client: Consumer,
    watch: Watch,
    topic: str,
    out: BinaryIO,
    from_beginning: bool,
    max_messages: int | None,
    timeout_ms: int | None,
    print_key: bool,
    print_partition: bool,
    value_format: str,
    key_format: str,
) -> int:
    start = OFFSET_BEGINNING if from_beginning else OFFSET_END
    client.assign([TopicPartition(topic, p, start) for p in rdkafka.partitions(client, watch, topic)])
    count = 0
    idle_since = time.monotonic()
    while max_messages is None or count < max_messages:
        wanted = 10_000 if max_messages is None else min(10_000, max_messages - count)
        messages = client.consume(wanted, timeout=0.2)
        watch.check()
        if not messages:
            if timeout_ms is not None and (time.monotonic() - idle_since) * 1000 >= timeout_ms:
                break
            continue
        idle_since = time.monotonic()
        for message in messages:
            if message.error() is not None:
                if rdkafka.unused_group(message.error()):
                    continue
                raise watch.translate(message.error(), "READ", "topic", topic, f"reading topic {topic} failed")
            line = b""
            if print_partition:
                line += b"Partition:%d\t" % message.partition()
            if print_key:
                line += format_value(message.key(), key_format) + b"\t"
            out.write(line + format_value(message.value(), value_format) + b"\n")
            count += 1
        out.flush()
    return count


def consume(
    bootstrap: str,
    topic: str,
    out: BinaryIO,
    *,
    from_beginning: bool = False,
    max_messages: int | None = None,
    timeout_ms: int | None = None,
    print_key: bool = False,
    print_partition: bool = False,
    value_format: str = "string",
    key_format: str = "string",
    isolation_level: str = "read_committed",
    security: ClientSecurity = PLAINTEXT,
) -> int:
    """Print the records of ``topic`` as kafka-console-consumer does (but read_committed by
    default: a stream run's open or aborted transactions are not shown); return how many."""
    check_access(bootstrap, security, topics={topic: ["READ"]})
    client, watch = rdkafka.consumer(bootstrap, security, isolation_level)
    try:
        return _consume(
            client,
            watch,
            topic,
            out,
            from_beginning,
            max_messages,
            timeout_ms,
            print_key,
            print_partition,
            value_format,
            key_format,
        )
    finally:
        client.close()
