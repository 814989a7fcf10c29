"""Looking keys up in a finished output: ``mrkafka lookup OUTPUT_DIR KEY [--fuzzy N]``.

An exact key is looked for in the one part the partitioner puts it in (part-r-K holds the
keys murmur2 sends to K); a fuzzy look-up looks in every part for the keys within N edits.
Each part is searched through its lookup index (``mrkafka.io.index``) where the run wrote one
(``--index``, or a job that asks for it), else by reading the part whole.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mrkafka.core.keys import owners
from mrkafka.errors import BadInputError
from mrkafka.io import fs
from mrkafka.io.commit import SUCCESS
from mrkafka.io.index import Match, PartIndex, index_paths, levenshtein, ranked, weight

__all__ = ["lookup"]


def _parts(output: str) -> tuple[list[str], bool]:
    """The part files of a finished output, and whether they are a map-only run's (``part-m``:
    not partitioned by key, so a key may be in any of them, as often as map emitted it)."""
    if not fs.is_dir(output):
        raise BadInputError(f"no output at {output}")
    if not fs.exists(fs.join(output, SUCCESS)):
        raise BadInputError(f"{output} is not a finished output (no {SUCCESS}: its run did not end, or failed)")
    names = fs.list_dir(output)
    for prefix, map_only in (("part-r-", False), ("part-m-", True)):
        parts = [fs.join(output, name) for name in names if name.startswith(prefix)]
        if parts:
            return parts, map_only
    raise BadInputError(f"{output} has no part files")


def _rows(part: str) -> Iterator[tuple[str, Any]]:
    """The ``(key, value)`` rows of a part in any output format, keys as text."""
    data = fs.read_bytes(part)
    if data.startswith(b"PAR1"):
        table = pq.read_table(pa.BufferReader(data))
        json_values = pa.types.is_string(table.schema.field("value").type)
        for key, value in zip(table.column("key").to_pylist(), table.column("value").to_pylist()):
            yield _text(key), (_json_or_text(value.encode()) if json_values else value)
    elif data.startswith(b'{"key":'):
        for line in data.splitlines():
            row = json.loads(line)
            yield _text(row["key"]), row["value"]
    else:
        for line in data.splitlines():
            key, _, value = line.partition(b"\t")
            yield key.decode("utf-8", "surrogateescape"), _json_or_text(value)


def _text(key: Any) -> str:
    return key.decode("utf-8", "surrogateescape") if isinstance(key, bytes) else str(key)


def _json_or_text(value: bytes) -> Any:
    text = value.decode("utf-8", "surrogateescape")  # a text part keeps bytes that are not UTF-8
    try:
        return json.loads(text)
    except ValueError:
        return text


def lookup(
    output: str | Path, key: str, fuzzy: int = 0, limit: int | None = None, note: Callable[[str], None] | None = None
) -> list[tuple[str, int, Any]]:
    """``(stored key, distance, value)`` for ``key``, and with ``fuzzy`` every key within that many
    edits: nearest first, then the most frequent (``mrkafka.io.index.weight``), then by key; the
    first ``limit`` if given (a suggester's size). ``note`` is told, once, when a part has no
    index and is read whole."""
    parts, map_only = _parts(fs.location(output))
    if not fuzzy and not map_only:
        parts = [parts[k] for k in owners(key, len(parts))]
    found: list[Match] = []
    missing_told = False
    for part in parts:
        if PartIndex.exists(part):
            try:
                found += _indexed(part, key, fuzzy, limit)
                continue
            except _UNREADABLE as exc:  # a damaged index: the part still answers
                if note is not None:
                    keys, trie = index_paths(part)
                    note(
                        f"cannot read the lookup index {keys} and {posixpath.basename(trie)} ({exc}): "
                        f"{posixpath.basename(part)} is read whole"
                    )
        elif note is not None and not map_only and not missing_told:  # a map-only run's parts have none
            note(f"{output} has no lookup index: its parts are read whole (a run with --index writes one)")
            missing_told = True
        found += _scan(part, key, fuzzy)
    return [(match.key, match.distance, match.value) for match in ranked(found, limit)]


#: What a truncated or altered index file raises: Arrow's errors, a short read, an index out of range.
_UNREADABLE = (pa.ArrowException, OSError, ValueError, IndexError, KeyError)


def _indexed(part: str, key: str, fuzzy: int, limit: int | None) -> list[Match]:
    """The matches in a part, through its index."""
    index = PartIndex(part)
    matches = index.fuzzy(key, fuzzy, limit) if fuzzy else index.exact(key)
    return [match._replace(value=_json_or_text(match.value)) for match in matches]


def _scan(part: str, key: str, fuzzy: int) -> Iterator[Match]:
    """The matches in a part without an index, read whole."""
    for stored, value in _rows(part):
        distance = levenshtein(key, stored, fuzzy) if fuzzy else (0 if stored == key else 1)
        if distance <= fuzzy:
            yield Match(stored, distance, value, weight(value))
