"""What a consume gives the stream engine: ``polls`` reads librdkafka's messages a column at
a time per partition (``Polled``: the map side), ``records`` one ``Record`` per message (the
reducers, whose polls are few records or a changelog to restore)."""

from __future__ import annotations

import bisect
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


class Polled(NamedTuple):
    """One partition's records of one consume, as columns, offsets ascending: what the map
    side takes, read from librdkafka's messages a column at a time (``polls``)."""

    offsets: list[int]
    keys: list[bytes | None]
    values: list[bytes | None]
    timestamps: list[int]

    @classmethod
    def of(cls, records: Sequence[Any]) -> Polled:
        """The columns of ``records``: objects with ``offset``, ``key``, ``value``, ``timestamp``."""
        columns = ([r.offset for r in records], [r.key for r in records], [r.value for r in records])
        return cls(*columns, [r.timestamp for r in records])

    def cut(self, start: int, stop: int | None = None) -> Polled:
        """Records ``start`` to ``stop``, or to the end (positions in the poll, not offsets)."""
        return Polled(*(column[start:stop] for column in self))

    def before(self, offset: int) -> int:
        """How many records come before ``offset``."""
        return bisect.bisect_left(self.offsets, offset)

    def through(self, offset: int) -> int:
        """How many records come before ``offset`` or are at it."""
        return bisect.bisect_right(self.offsets, offset)


_ERROR, _PARTITION = operator.methodcaller("error"), operator.methodcaller("partition")
_COLUMNS = tuple(operator.methodcaller(name) for name in ("offset", "key", "value", "timestamp"))


def polls(messages: Sequence[Any]) -> dict[int, Polled]:
    """Each partition's records of one consume (``Polled``); a message that is an error raises it.

    One C call per message and column, no object per record: about half what ``records``
    costs per message (0.7 against 1.3 us here), paid for every input record."""
    for error in filter(None, map(_ERROR, messages)):
        raise KafkaException(error)
    grouped: dict[int, list[Any]] = {}
    for partition, run in itertools.groupby(messages, _PARTITION):
        grouped.setdefault(partition, []).extend(run)
    offset, key, value, timestamp = _COLUMNS
    return {
        partition: Polled(
            list(map(offset, run)), list(map(key, run)), list(map(value, run)), [t[1] for t in map(timestamp, run)]
        )
        for partition, run in grouped.items()
    }


def records(messages: Iterable[Any]) -> Iterator[tuple[int, Record]]:
    """``(partition, Record)`` of each consumed message; a message that is an error raises it."""
    for message in messages:
        if (error := message.error()) is not None:
            raise KafkaException(error)
        yield (
            message.partition(),
            Record(message.offset(), message.key(), message.value(), message.timestamp()[1], message.headers()),
        )
