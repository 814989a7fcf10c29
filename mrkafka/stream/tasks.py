"""What a map task computes, without Kafka: ``StreamMapper`` takes the records of input
partitions (each a *task*, as Kafka Streams says) and holds their combined partials until
the worker drains a task's blocks to produce them. ``mrkafka.stream.reducer`` is the other
half.

A poll comes as columns (``mrkafka.kafka.records.Polled``: offsets, keys, values, read on
first use), so the logic is tested with lists (``Polled.of`` any records).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

import pyarrow as pa

from mrkafka.core.aggregate import Accumulator, Aggregation
from mrkafka.core.counters import (
    BYTES_READ,
    COMBINE_INPUT_RECORDS,
    COMBINE_OUTPUT_RECORDS,
    MAP_INPUT_RECORDS,
    MAP_OUTPUT_RECORDS,
    Counters,
)
from mrkafka.core.keys import (
    split_by_partition,
)
from mrkafka.core.map_side import map_arrow, map_records
from mrkafka.core.partial import (
    key_kind,
    partial_to_ipc,
)
from mrkafka.core.values import UnsupportedValue
from mrkafka.errors import BadInputError, JobFailedError
from mrkafka.job import JobSpec

if TYPE_CHECKING:
    from mrkafka.kafka.records import Polled

__all__ = [
    "BLOCK_BYTES",
    "Block",
    "Mapped",
    "StreamMapper",
]

log = logging.getLogger(__name__)

#: Arrow block size on the repartition topic, by the rows' real sizes (a longer row goes alone).
BLOCK_BYTES = 900_000


class Block(NamedTuple):
    """One repartition record: partial pairs that all belong to repartition ``partition``."""

    partition: int
    data: bytes
    timestamp: int


class Mapped(NamedTuple):
    """One poll of one input partition, mapped and combined."""

    table: pa.Table
    newest: int  # the newest input timestamp in it
    counters: Counters
    where: str


class StreamMapper:
    """Maps and combines the records of input partitions; drains a task's partial blocks.

    ``counters`` hold what was committed only: a task's counts wait beside what it holds, and
    move into them when the worker says its commit went through (``committed``); a task dropped
    (revoked, aborted) takes its counts with it, as its input is read again."""

    def __init__(self, spec: JobSpec, reducers: int, input_topic: str, block_bytes: int = BLOCK_BYTES) -> None:
        self.spec = spec
        self.job = spec.instantiate()
        self.reducers = reducers
        self.input_topic = input_topic
        self.block_bytes = block_bytes
        self.aggregation = Aggregation(self.job, spec.vectorize)
        self.vectorized = spec.vectorize and self.job.has_map_arrow()
        self.counters = Counters()
        self._counted: dict[int, Counters] = {}  # per input partition: counts of what it holds
        self._draining: dict[int, Counters] = {}  # per input partition: counts of what it drained
        self._held: dict[int, Accumulator] = {}  # per input partition: partials not yet produced
        self._timestamps: dict[int, int] = {}  # newest input timestamp held, per input partition

    @property
    def held_records(self) -> int:
        return sum(a.input_records for a in self._held.values())

    def map(self, partition: int, polled: Polled) -> Mapped | None:
        """Map and combine one poll of one input partition; what the task holds is unchanged
        (a worker maps off its event loop, and holds the result on it with ``hold``)."""
        if not polled:
            return None
        counters = Counters()
        first, last = polled.first_offset, polled.last_offset
        where_all = f"topic {self.input_topic} partition {partition} offsets {first}-{last}"
        if self.job.stream.keyed_input and None in polled.keys:
            offset = polled.offsets[polled.keys.index(None)]
            raise BadInputError(
                f"topic {self.input_topic} partition {partition} offset {offset} has no key, and "
                f"{self.spec.name} needs keyed input (produce it keyed, e.g. mrkafka produce --key-sep SEP "
                "--key-field N)"
            )
        values = [b"" if v is None else v for v in polled.values] if None in polled.values else polled.values
        counters.add(MAP_INPUT_RECORDS, len(values))
        counters.add(BYTES_READ, sum(map(len, values)))
        # Combining each poll first keeps the hash tables small: measured faster than one big merge.
        if self.vectorized:
            batches = [(pa.array(values, pa.binary()), where_all)]
            table, _, emitted = map_arrow(self.job, batches, self.aggregation)
        else:

            def where(offset: int) -> str:
                return f"topic {self.input_topic} partition {partition} offset {offset}"

            pairs = zip(polled.offsets, values)
            table, _, emitted = map_records(self.job, pairs, where, self.aggregation, self.spec.skip_errors)
        counters.add(MAP_OUTPUT_RECORDS, emitted)
        counters.add(COMBINE_INPUT_RECORDS, emitted)  # a poll's map output is all combined
        counters.take_job_counters(self.spec.name, self.job)
        return Mapped(table, polled.newest_timestamp, counters, where_all)

    def hold(self, partition: int, mapped: Mapped | None) -> None:
        """Add a mapped poll to what its task holds."""
        if mapped is None:
            return
        try:
            self._held.setdefault(partition, Accumulator(self.aggregation)).add(mapped.table)
        except Exception as exc:
            raise JobFailedError.raised("reduce (as combiner)", exc, mapped.where) from exc
        self._timestamps[partition] = max(self._timestamps.get(partition, mapped.newest), mapped.newest)
        self._counted.setdefault(partition, Counters()).update(mapped.counters)

    def drain(self, partition: int) -> list[Block]:
        """The combined partials of one task as repartition blocks; the task holds nothing after."""
        accumulator = self._held.pop(partition, None)
        timestamp = self._timestamps.pop(partition, 0)
        if accumulator is None:
            return []
        try:
            table = accumulator.result()
        except UnsupportedValue as exc:
            raise JobFailedError(f"reduce (as combiner) made {exc} (input partition {partition})") from exc
        counted = self._draining.setdefault(partition, Counters())
        counted.update(self._counted.pop(partition, Counters()))  # a poll held after this counts at the next commit
        counted.add(COMBINE_OUTPUT_RECORDS, table.num_rows)
        return [
            Block(k, data, timestamp)
            for k, part in enumerate(split_by_partition(table, self.reducers, key_kind(table)))
            for data in partial_to_ipc(part, self.block_bytes)
        ]

    def skipped(self, partition: int) -> None:
        """A record of task ``partition`` was skipped (``--on-error skip``): counted in the job's
        ``bad_records`` with what the task holds."""
        self._counted.setdefault(partition, Counters()).add((self.spec.name, "bad_records"), 1)

    def drained(self, partition: int) -> Counters:
        """The counts of what task ``partition`` drained since its last commit."""
        return self._draining.get(partition, Counters())

    def committed(self, partition: int) -> None:
        """The worker committed what it drained of task ``partition``: count it."""
        self.counters.update(self._draining.pop(partition, Counters()))

    def drop(self, partitions: Iterable[int] | None = None) -> None:
        """Forget what tasks hold (all, or those of ``partitions``), and their counts: their
        input is read again."""
        every = self._held.keys() | self._counted.keys() | self._draining.keys()
        for partition in list(every) if partitions is None else partitions:
            self._held.pop(partition, None)
            self._timestamps.pop(partition, None)
            self._counted.pop(partition, None)
            self._draining.pop(partition, None)
