"""An interval's merges as columns: the repartition blocks of a built-in aggregate over int64
values, folded into a columnar store's state at the commit, with no Python per key.

A reducer holds the blocks it merged since its last commit (``add``); ``merged`` groups
their keys in a ``KeyTable``, folds each key's values in arrival order (``fold``), looks the
distinct keys up in the store and merges the two: the changed keys, their new states and the
newest input timestamp of each, as the per-record path (``Aggregation.merge_into`` with the
store's ``get``) would give them. A sum that would leave int64, or a store's state that is not
an int64, gives ``None``: the reducer then merges the blocks record by record (``pairs``),
where Python's integers have no bound.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from mrkafka.core.kernels.table import FOLDS, KeyTable, fold
from mrkafka.core.partial import KEY, VALUE

__all__ = ["ColumnMerges", "foldable"]


def foldable(partial: pa.Table) -> bool:
    """Whether a partial's values are a column ``ColumnMerges`` takes: int64, no nulls."""
    values = partial.column(VALUE)
    return values.type == pa.int64() and values.null_count == 0


class ColumnMerges:
    """The blocks merged since the last commit, for built-in aggregate ``aggregate``."""

    def __init__(self, aggregate: str) -> None:
        self.aggregate = aggregate
        self._blocks: list[tuple[pa.Array, np.ndarray, int]] = []

    def __bool__(self) -> bool:
        return bool(self._blocks)

    def add(self, partial: pa.Table, timestamp: int) -> None:
        keys = partial.column(KEY).combine_chunks()
        self._blocks.append((keys, np.asarray(partial.column(VALUE), np.int64), timestamp))

    def distinct(self) -> int:
        """The number of distinct keys merged."""
        if not self._blocks:
            return 0
        table = KeyTable()
        for keys, _, _ in self._blocks:
            table.add(keys)
        return table.rows

    def clear(self) -> None:
        self._blocks = []

    def pairs(self) -> Iterator[tuple[list[bytes], list[int], int]]:
        """The blocks as Python keys and values, with their timestamps, in arrival order."""
        for keys, values, timestamp in self._blocks:
            yield keys.to_pylist(), values.tolist(), timestamp

    def merged(self, lookup: Any) -> tuple[pa.Array, np.ndarray, np.ndarray] | None:
        """The distinct keys merged, each one's new state and newest timestamp; ``lookup(keys)``
        gives the store's states of keys and whether it has them (``StateStore.lookup``).
        ``None`` if a sum would leave int64, or the store holds a state that is not an int64."""
        keys = pa.concat_arrays([k for k, _, _ in self._blocks])
        values = np.concatenate([v for _, v, _ in self._blocks])
        stamps = np.concatenate([np.full(len(v), t, np.int64) for _, v, t in self._blocks])
        table = KeyTable()
        groups = table.add(keys)
        op = FOLDS[self.aggregate]
        delta, _, overflow = fold(groups, values, table.rows, op)
        if overflow:
            return None
        newest, _, _ = fold(groups, stamps, table.rows, FOLDS["max"])
        distinct = table.keys()
        looked = lookup(distinct)
        if looked is None:  # the store holds a state that is not an int64
            return None
        states = _merge(*looked, delta, self.aggregate)
        return None if states is None else (distinct, states, newest)


def _merge(old: np.ndarray, found: np.ndarray, delta: np.ndarray, aggregate: str) -> np.ndarray | None:
    """A store's states (where ``found``) merged with an interval's (the later); ``None`` if a
    sum would leave int64."""
    if aggregate in ("sum", "count"):
        with np.errstate(over="ignore"):
            total = old + delta  # wraps where it leaves int64: told by the signs below
        if np.any(((old ^ total) & (delta ^ total)) < 0):
            return None
        return total
    if aggregate == "min":
        return np.where(found, np.minimum(old, delta), delta)
    if aggregate == "max":
        return np.where(found, np.maximum(old, delta), delta)
    return delta  # last
