"""Mapping input records to partial tables: the map side both engines share.

A batch map task feeds it the lines of a split; a stream map task the values of one poll
of one input partition. ``where`` turns a record's position (a byte offset in a file, an
offset in a partition) into the words an error message needs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pyarrow as pa

from mrkafka.aggregate import Aggregation
from mrkafka.errors import JobFailedError
from mrkafka.job import Job
from mrkafka.partial import VALUE, partial_from_arrow, partial_from_pairs

__all__ = ["map_arrow", "map_records"]

log = logging.getLogger("mrkafka")


def map_arrow(job: Job, lines: pa.Array, where: str) -> pa.Table:
    """The job's vectorized map over a batch of lines, as a partial (count's values made 1)."""
    try:
        table = partial_from_arrow(job.map_arrow(lines))
    except Exception as exc:
        raise JobFailedError.raised("map_arrow", exc, where) from exc
    if job.aggregate == "count":
        table = table.set_column(1, VALUE, pa.array(np.ones(table.num_rows, np.int64)))
    return table


def map_records(
    job: Job,
    records: Iterable[tuple[int, bytes]],
    where: Callable[[int], str],
    aggregation: Aggregation | None,
    skip_errors: bool = False,
) -> tuple[pa.Table, int, int]:
    """The job's per-record map over ``(position, line)`` records.

    With an ``aggregation`` the combiner (``Aggregation.merge_into``) folds the pairs into one
    dict every ``_COMBINE_EVERY`` pairs, so a task holds little more than its distinct keys. With
    ``skip_errors`` a record the map raises on is skipped whole (none of its pairs kept),
    counted in the job's ``bad_records`` and logged with its position (Kafka Streams'
    log-and-continue); else it fails the task. Returns the partial, the records read and
    the pairs the map emitted.
    """
    as_text = job.input_type is not bytes
    count = job.aggregate == "count"
    held: dict[Any, Any] = {}
    keys: list[Any] = []
    values: list[Any] = []
    read = emitted = 0
    position = -1
    key_type: type | None = None

    def combine() -> None:
        try:
            aggregation.merge_into(held, keys, values)
        except Exception as exc:
            raise JobFailedError.raised("reduce (as combiner)", exc, f"the records up to {where(position)}") from exc
        keys.clear()
        values.clear()

    try:
        for position, line in records:
            read += 1
            value = line.decode("utf-8", "surrogateescape") if as_text else line
            pairs = job.map(position, value)
            if skip_errors:
                try:
                    pairs = list(pairs)
                except Exception as exc:
                    job.increment_counter("bad_records")
                    log.warning("skipped the record at %s: map raised %s: %s", where(position), type(exc).__name__, exc)
                    continue
            for key, out in pairs:
                emitted += 1
                if type(key) is not key_type:
                    key_type = _check_key(key, key_type, where(position))
                keys.append(key)
                values.append(1 if count else out)
            if aggregation is not None and len(keys) >= _COMBINE_EVERY:
                combine()
    except JobFailedError:
        raise
    except Exception as exc:
        raise JobFailedError.raised("map", exc, where(position)) from exc
    if aggregation is not None:
        combine()
        keys, values = list(held), list(held.values())
    try:
        return partial_from_pairs(keys, values), read, emitted
    except Exception as exc:  # a value pickle cannot hold
        raise JobFailedError(
            f"map emitted a value that cannot be pickled: {type(exc).__name__}: {exc} (in the records up to "
            f"{where(position)})"
        ) from exc


_KEY_TYPES = (str, bytes, int)
#: With a combiner, map output is merged into the held values every this many pairs.
_COMBINE_EVERY = 1 << 16


def _check_key(key: Any, seen: type | None, where: str) -> type:
    """The type of ``key``, if it may be a key after keys of type ``seen``; else the job's error."""
    if type(key) not in _KEY_TYPES:
        raise JobFailedError(f"map emitted a {type(key).__name__} key {key!r}: keys are str, bytes or int ({where})")
    if seen is not None:
        raise JobFailedError(
            f"map emitted a {type(key).__name__} key {key!r} after {seen.__name__} keys: a job's keys are of one "
            f"kind ({where})"
        )
    return type(key)
