"""Word count: a word is a maximal run of bytes other than ASCII whitespace, case kept.

This is ``bytes.split()``, and ``tr -s '[:space:]' '\\n'`` in the C locale. Bytes that are
not UTF-8 stay as they are. ``map``/``reduce`` is the per-record form; ``map_arrow`` with
the built-in ``sum`` is the vectorized form the engines prefer; both give the same output.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mrkafka import Job


class WordCount(Job):
    name = "wordcount"
    input_type = bytes
    aggregate = "sum"
    value_serde = "long"

    def map(self, offset, line):
        for word in line.split():
            yield word, 1

    def reduce(self, a, b):
        return a + b

    def map_arrow(self, lines: pa.Array) -> pa.Table:
        # Arrow's ASCII kernels see bytes only, so a binary->string view is safe for any bytes.
        words = pc.ascii_split_whitespace(lines.view(pa.string())).flatten().view(pa.binary())
        # The kernel yields empty tokens for leading and trailing whitespace; words never are.
        empty = pc.equal(pc.binary_length(words), 0)
        if pc.any(empty).as_py():
            words = words.filter(pc.invert(empty))
        return pa.table({"key": words, "value": np.ones(len(words), dtype=np.int64)})
