"""What a consume gives the stream engine: ``polls`` groups librdkafka's messages per
partition, read a column at a time (``Polled``: the map side), ``records`` one ``Record`` per
message (the reducers, whose polls are few records or a changelog to restore)."""

from __future__ import annotations

import bisect
import functools
import itertools
import operator
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from confluent_kafka import KafkaException

__all__ = ["Polled", "Record", "polls", "records"]


class Record(NamedTuple):
    """A consumed record, as the stream engine's logic takes it."""

    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int
    headers: list[tuple[str, bytes]] | None = None


_ERROR, _PARTITION = operator.methodcaller("error"), operator.methodcaller("partition")
_OFFSET, _KEY, _VALUE = (operator.methodcaller(name) for name in ("offset", "key", "value"))


class Polled:
    """One partition's records of one consume, offsets ascending: what the map side takes.

    Its columns are read from librdkafka's messages a column at a time (one C call a message,
    no object a record), each on first use: word count's map reads the values only, about
    110 ns a message of the 0.6 us that offsets, keys, values and timestamps cost together.
    ``cut``, ``before`` and ``through`` need no column."""

    def __init__(self, messages: Sequence[Any]) -> None:
        self.messages = messages  # librdkafka's, or anything with their methods

    @classmethod
    def of(cls, records: Iterable[Any]) -> Polled:
        """A poll of ``records``: objects with ``offset``, ``key``, ``value``, ``timestamp``."""
        return cls([_AsMessage(record) for record in records])

    def __len__(self) -> int:
        return len(self.messages)

    @functools.cached_property
    def offsets(self) -> list[int]:
        return list(map(_OFFSET, self.messages))

    @functools.cached_property
    def keys(self) -> list[bytes | None]:
        return list(map(_KEY, self.messages))

    @functools.cached_property
    def values(self) -> list[bytes | None]:
        return list(map(_VALUE, self.messages))

    @property
    def first_offset(self) -> int:
        return self.messages[0].offset()

    @property
    def last_offset(self) -> int:
        return self.messages[-1].offset()

    @property
    def newest_timestamp(self) -> int:
        """The last record's timestamp: the poll's newest where a partition's times ascend (log
        append time, or one producer's create times); what end-to-end latency is measured from."""
        return self.messages[-1].timestamp()[1]

    def cut(self, start: int, stop: int | None = None) -> Polled:
        """Records ``start`` to ``stop``, or to the end (positions in the poll, not offsets)."""
        return Polled(self.messages[start:stop])

    def before(self, offset: int) -> int:
        """How many records come before ``offset``."""
        return bisect.bisect_left(self.messages, offset, key=_OFFSET)

    def through(self, offset: int) -> int:
        """How many records come before ``offset`` or are at it."""
        return bisect.bisect_right(self.messages, offset, key=_OFFSET)


class _AsMessage:
    """A record with a librdkafka message's methods."""

    __slots__ = ("_record",)

    def __init__(self, record: Any) -> None:
        self._record = record

    def offset(self) -> int:
        return self._record.offset

    def key(self) -> bytes | None:
        return self._record.key

    def value(self) -> bytes | None:
        return self._record.value

    def timestamp(self) -> tuple[int, int]:
        return (1, self._record.timestamp)  # TIMESTAMP_CREATE_TIME


def polls(messages: Sequence[Any]) -> dict[int, Polled]:
    """Each partition's records of one consume (``Polled``); a message that is an error raises it."""
    for error in filter(None, map(_ERROR, messages)):
        raise KafkaException(error)
    partitions = list(map(_PARTITION, messages))
    if partitions and partitions.count(partitions[0]) == len(partitions):  # one partition's: no copy
        return {partitions[0]: Polled(messages)}
    grouped: dict[int, list[Any]] = {}
    for partition, run in itertools.groupby(messages, _PARTITION):
        grouped.setdefault(partition, []).extend(run)
    return {partition: Polled(run) for partition, run in grouped.items()}


def records(messages: Iterable[Any]) -> Iterator[tuple[int, Record]]:
    """``(partition, Record)`` of each consumed message; a message that is an error raises it."""
    for message in messages:
        if (error := message.error()) is not None:
            raise KafkaException(error)
        yield (
            message.partition(),
            Record(message.offset(), message.key(), message.value(), message.timestamp()[1], message.headers()),
        )
