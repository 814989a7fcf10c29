"""Looking keys up in a finished output: ``mrkafka lookup OUTPUT_DIR KEY [--fuzzy N]``.

An exact key is read from the one part file the partitioner puts it in (part-r-K holds the
keys murmur2 sends to K); a fuzzy look-up scans every part for keys within N edits.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from mrkafka.errors import BadInputError
from mrkafka.output import SUCCESS
from mrkafka.partition import partition_for

__all__ = ["levenshtein", "lookup"]


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


def _parts(output: Path) -> list[Path]:
    if not (output / SUCCESS).exists():
        raise BadInputError(f"{output} is not a finished output (no {SUCCESS})")
    parts = sorted(output.glob("part-r-*"))
    if not parts:
        raise BadInputError(f"{output} has no part-r files")
    return parts


def _rows(part: Path) -> Iterator[tuple[str, Any]]:
    for line in part.read_bytes().splitlines():
        key, _, value = line.partition(b"\t")
        try:
            yield key.decode("utf-8", "surrogateescape"), json.loads(value)
        except ValueError:
            yield key.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape")


def lookup(output: str | Path, key: str, fuzzy: int = 0) -> list[tuple[str, int, Any]]:
    """``(stored key, distance, value)`` for ``key`` (and keys within ``fuzzy`` edits), nearest first."""
    parts = _parts(Path(output))
    if not fuzzy:
        k = int(partition_for(pa.array([key.encode("utf-8", "surrogateescape")], pa.binary()), len(parts))[0])
        return [(stored, 0, value) for stored, value in _rows(parts[k]) if stored == key]
    found = []
    for part in parts:
        for stored, value in _rows(part):
            distance = levenshtein(key, stored, fuzzy)
            if distance <= fuzzy:
                found.append((stored, distance, value))
    return sorted(found, key=lambda row: (row[1], row[0]))
