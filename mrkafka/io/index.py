"""The lookup index of a part file: exact and fuzzy (Levenshtein) key look-ups in milliseconds.

A reducer writes it beside its part, under ``OUTPUT/_index/``, from the rows it just wrote:

* ``part-r-K.keys.arrow``: the part's keys (UTF-8, surrogate escapes kept) in code point
  order, and their values as the text part shows them;
* ``part-r-K.trie.arrow``: a trie over those keys, one node per distinct key prefix
  (its character, the key that ends there, its children in character order).

Both are Arrow IPC files, memory-mapped when read: a look-up touches only the pages it needs.
An exact look-up walks the trie one character at a time. A fuzzy one walks it breadth first
with a Levenshtein automaton's rows (one row of the edit-distance table per node, computed
for a whole level of the trie at once with numpy), pruning every node whose row has no
entry within the edits allowed: Lucene's fuzzy query does the same over its FST.
"""

from __future__ import annotations

import itertools
import os
import posixpath
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mrkafka.core import kernels
from mrkafka.core.partial import KEY, VALUE, Rows
from mrkafka.io import fs

__all__ = ["INDEX_DIR", "Match", "PartIndex", "index_paths", "levenshtein", "ranked", "weight", "write_index"]

INDEX_DIR = "_index"
_KEYS = ".keys.arrow"
_TRIE = ".trie.arrow"


class Match(NamedTuple):
    key: str
    distance: int
    value: Any  # as the text part shows it (bytes), until the look-up decodes it
    weight: int  # how frequent the value says the key is (``weight``)


def index_paths(part: str | Path) -> tuple[str, str]:
    """Where the index of the part file ``part`` lives (``OUTPUT/_index/part-r-K.*``)."""
    directory, name = posixpath.split(os.fspath(part))
    return fs.join(directory, INDEX_DIR, f"{name}{_KEYS}"), fs.join(directory, INDEX_DIR, f"{name}{_TRIE}")


# -- building -----------------------------------------------------------------------------------


def write_index(part: pa.Table | Rows, path: str | Path, texts: pa.Array) -> None:
    """Write the index of the part file at ``path`` from its rows; ``texts`` are the values as
    the text format writes them."""
    if isinstance(part, Rows):
        keys = pa.array(part.keys, pa.large_binary())
    else:
        keys = part.column(KEY).cast(pa.large_binary()).combine_chunks()
    points, offsets = kernels.code_points(keys)
    order = kernels.code_point_order(points, offsets)
    keys_path, trie_path = index_paths(path)  # in a directory the committer made (no straggler remakes it)
    _write(keys_path, pa.table({"key": keys, "value": texts, "weight": _weights(part)}).take(order))
    names = ("char", "key_id", "children", "child_start", "child_end")
    _write(trie_path, pa.table(dict(zip(names, kernels.trie(points, offsets, order)))))


def ranked(matches: Iterable[Match], limit: int | None = None) -> list[Match]:
    """Nearest first, then the most frequent, then by key; the first ``limit`` if given."""
    order = sorted(matches, key=lambda match: (match.distance, -match.weight, match.key))
    return order if limit is None else order[:limit]


def weight(value: Any) -> int:
    """How frequent a value says its key is: the value if it is an integer (a count), else the
    count of a list's first ``[item, count]`` (prefix_index's top completion), else 0; held
    within int64, where the index keeps it."""
    if type(value) is not int:
        try:
            value = value[0][1]
        except (TypeError, LookupError):
            return 0
        if type(value) is not int:
            return 0
    return min(max(value, -(1 << 63)), (1 << 63) - 1)


def _weights(part: pa.Table | Rows) -> pa.Array:
    if isinstance(part, pa.Table) and pa.types.is_integer(part.schema.field(VALUE).type):
        return pc.cast(part.column(VALUE), pa.int64()).combine_chunks()
    return pa.array([weight(v) for v in (part if isinstance(part, Rows) else Rows.of(part)).values], pa.int64())


def _write(path: str, table: pa.Table) -> None:
    with fs.open_output(path) as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


# -- reading ------------------------------------------------------------------------------------


class PartIndex:
    """The index of one part, memory-mapped."""

    def __init__(self, part: str | Path) -> None:
        keys_path, trie_path = index_paths(part)
        self.keys = _read(keys_path)
        trie = _read(trie_path)
        self._char, self._key_id, self._children, self._start, self._end = (
            trie.column(name).chunk(0).to_numpy() for name in ("char", "key_id", "children", "child_start", "child_end")
        )

    @staticmethod
    def exists(part: str | Path) -> bool:
        return all(fs.exists(p) for p in index_paths(part))

    def _matches(self, found: dict[int, int], limit: int | None = None) -> list[Match]:
        """The keys ``found`` (key id -> distance), ranked; their values are read for the first
        ``limit`` only (a short fuzzy query can match most short keys)."""
        ids = pa.array(list(found), pa.int64())
        keys = [key.decode("utf-8", "surrogateescape") for key in self.keys.column("key").take(ids).to_pylist()]
        weights = self.keys.column("weight").take(ids).to_pylist()
        best = ranked(map(Match, keys, found.values(), itertools.repeat(None), weights), limit)
        row = dict(zip(keys, found))  # a part's keys are distinct
        values = self.keys.column("value").take(pa.array([row[m.key] for m in best], pa.int64())).to_pylist()
        return [match._replace(value=value) for match, value in zip(best, values)]

    def exact(self, key: str) -> list[Match]:
        node = 0
        for c in _query(key):
            kids = self._children[self._start[node] : self._end[node]]
            at = int(np.searchsorted(self._char[kids], c))
            if at == len(kids) or self._char[kids[at]] != c:
                return []
            node = int(kids[at])
        key_id = int(self._key_id[node])
        return self._matches({key_id: 0}) if key_id >= 0 else []

    def fuzzy(self, key: str, edits: int, limit: int | None = None) -> list[Match]:
        """Every key within ``edits`` Levenshtein edits (insert, delete, substitute) of ``key``,
        ranked (``ranked``), the first ``limit`` if given.

        Row ``d`` of the edit-distance table (a node at depth ``d`` against the query's
        prefixes) is kept only in its band, columns ``d - edits .. d + edits``: outside it
        every entry exceeds ``edits`` (Ukkonen), so a level costs ``2 * edits + 1`` steps
        over its nodes, whatever the query's length. Entries over ``edits`` are held as
        ``edits + 1``."""
        q = _query(key)
        m, width, over = len(q), 2 * edits + 1, edits + 1
        found: dict[int, int] = {}
        if m <= edits and self._key_id[0] >= 0:
            found[int(self._key_id[0])] = m
        # band[:, k] holds column j = depth - edits + k; at depth 0 column j is j.
        columns = np.arange(-edits, edits + 1)
        band = np.where(columns >= 0, np.minimum(np.abs(columns), over), over).astype(np.int32)[None, :]
        nodes = np.zeros(1, np.int64)
        for depth in range(1, m + edits + 1):
            starts, counts = self._start[nodes], (self._end[nodes] - self._start[nodes]).astype(np.int64)
            total = int(counts.sum())
            if not total:
                break
            offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
            kids = self._children[np.repeat(starts, counts) + offsets].astype(np.int64)
            previous = band[np.repeat(np.arange(len(nodes)), counts)]
            chars = self._char[kids]
            current = np.full_like(previous, over)
            for k in range(width):
                j = depth - edits + k
                if j < 0 or j > m:
                    continue
                if j == 0:
                    current[:, k] = min(depth, over)
                    continue
                best = previous[:, k] + (chars != q[j - 1])  # substitute (or match)
                if k + 1 < width:
                    best = np.minimum(best, previous[:, k + 1] + 1)  # delete the node's character
                if k > 0:
                    best = np.minimum(best, current[:, k - 1] + 1)  # insert the query's character
                current[:, k] = np.minimum(best, over)
            last = m - depth + edits  # column m in the band
            if 0 <= last < width:
                ids = self._key_id[kids]
                hits = (ids >= 0) & (current[:, last] <= edits)
                found.update(zip(ids[hits].tolist(), current[hits, last].tolist()))
            alive = current.min(axis=1) <= edits
            nodes, band = kids[alive], current[alive]
            if not len(nodes):
                break
        return self._matches(found, limit)


def levenshtein(a: str, b: str, limit: int) -> int:
    """Edit distance of ``a`` and ``b`` (insert, delete, substitute), or ``limit + 1`` beyond ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(current) > limit:
            return limit + 1
        previous = current
    return min(previous[-1], limit + 1)


def _query(key: str) -> np.ndarray:
    return np.frombuffer(key.encode("utf-32-be", "surrogatepass"), ">u4").astype(np.uint32)


def _read(path: str) -> pa.Table:
    return pa.ipc.open_file(fs.memory_map(path)).read_all()
