"""Word count: a word is a maximal run of bytes other than ASCII whitespace, case kept.

This is ``bytes.split()``, and ``tr -s '[:space:]' '\\n'`` in the C locale. Bytes that are
not UTF-8 stay as they are. ``map``/``reduce`` is the per-record form; ``map_arrow`` with
the built-in ``sum`` is the vectorized form the engines prefer; both give the same output.

The vectorized form counts the words of each batch of lines itself, in one compiled pass
(``mrkafka.core.kernels.count_words``): it emits each distinct word of a batch once, with its
count, where the per-record form emits ``(word, 1)`` per word (Hadoop's "in-mapper
combining"). So its *Map output records* are fewer; the job's ``words`` counter counts the
words in both forms. A map-only run (``--reducers 0``) writes every word, in both forms.

Parameters: ``-p lower=true`` lowercases ASCII letters first; ``-p pattern=REGEX`` splits on
that regular expression instead of whitespace (empty words dropped). ``-p lower=true -p
pattern='\\W+'`` is Kafka Streams' WordCountDemo tokenizer: ``\\W`` is ASCII-only there, as it
is here on bytes. A pattern means what Python's ``re`` makes of it on bytes, in both forms
(``mrkafka.core.regex`` gives Arrow's RE2 that meaning: ``\\s`` includes ``\\v``).
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mrkafka import Job, StreamOptions
from mrkafka.core import kernels, regex


class WordCount(Job):
    name = "wordcount"
    input_type = bytes
    aggregate = "sum"
    stream = StreamOptions(value_serde="long")
    parameters = {"lower": False, "pattern": ""}

    def __init__(self, params=None):
        super().__init__(params)
        pattern = self.params["pattern"]
        try:
            self._split = re.compile(pattern.encode()).split if pattern else bytes.split
        except re.error as exc:
            raise ValueError(f"pattern {pattern!r} is not a regular expression: {exc}") from None

    def map(self, offset, line):
        if self.params["lower"]:
            line = line.lower()
        words = [word for word in self._split(line) if word]
        self.increment_counter("words", len(words))
        for word in words:
            yield word, 1

    def reduce(self, a, b):
        return a + b

    def map_arrow(self, lines: pa.Array) -> pa.Table:
        # Arrow's ASCII kernels see bytes only, so a binary->string view is safe for any bytes.
        if self.params["lower"]:
            lines = pc.ascii_lower(lines.view(pa.string())).view(pa.binary())
        if self.params["pattern"]:
            words = pc.split_pattern_regex(lines, regex.for_arrow(self.params["pattern"])).flatten()
        elif not self.map_only:
            words, counts, read = kernels.count_words(lines)
            self.increment_counter("words", read)
            return pa.table({"key": words, "value": counts})
        else:  # every word, in order
            words = pc.ascii_split_whitespace(lines.view(pa.string())).flatten().view(pa.binary())
        # Splitting yields empty tokens at the ends of a line; words never are empty.
        empty = pc.equal(pc.binary_length(words), 0)
        if pc.any(empty).as_py():
            words = words.filter(pc.invert(empty))
        self.increment_counter("words", len(words))
        return pa.table({"key": words, "value": np.ones(len(words), dtype=np.int64)})
