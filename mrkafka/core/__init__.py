"""The shared model of both engines: what a key is and where it goes, the partial both engines
move, the one merge of values, the map side, counters and the report, values' encodings, and
the compiled kernels under all of it.

    keys, partition    the key contract (a key's bytes in files and on topics) and Kafka's murmur2 partitioner
    partial            the key/value Arrow table both engines move, and its IPC form
    aggregate          the one merge of values into held state, and the reducer's last step (finish, sort)
    map_side           mapping records to partials, vectorized or per record (--on-error)
    counters, report   Hadoop's counters, and the line a run ends with
    json, serdes       the one JSON encoder; values on topics (Kafka's LongSerializer, JSON)
    regex              a job's regex with Python's meaning for Arrow's RE2 kernels
    kernels            the compiled loops (numba)

May import the top modules (job, errors, settings) only: never an engine, a file system, Kafka
or Ray. Importing this package itself is light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MISSING"]

#: What a held mapping or a state store gives for a key it does not hold, and what deletes a
#: key when written (``None`` is a value a reduce may return).
MISSING: Any = object()
