"""A prefix index for completion: every word -> each of its prefixes of two characters or
more ("Mukesh" -> Mu, Muk, Muke, Mukes, Mukesh) -> per prefix the 5 most frequent words
(ties by word). Look completions up with ``mrkafka lookup OUTPUT_DIR PREFIX [--fuzzy N]``.

A word is a maximal run of characters other than whitespace (``str.split()``). ``map`` is
the per-record form: one pair per prefix of every word it meets. ``map_arrow`` counts the
words of a whole batch first (Arrow's hash count), then expands each distinct word's
prefixes once, so the work grows with the distinct words, not with every occurrence.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from operator import itemgetter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mrkafka import Job

TOP = 5


class PrefixIndex(Job):
    name = "prefix_index"
    parameters = {"top": TOP}
    index = True  # its outputs are for looking prefixes up: every run writes the lookup index

    def map(self, offset, line):
        for word in line.split():
            for end in range(2, len(word) + 1):
                yield word[:end], {word: 1}

    def map_arrow(self, lines: pa.Array) -> Iterator[tuple[str, dict[str, int]]]:
        # ASCII whitespace first (Arrow), then what else str.split() splits on, per distinct token.
        tokens = pc.ascii_split_whitespace(lines.view(pa.string())).flatten().view(pa.binary())
        counted = pc.value_counts(tokens)
        words: dict[str, dict[str, int]] = {}  # prefix -> {word: count}
        for token, count in zip(counted.field(0).to_pylist(), counted.field(1).to_pylist()):
            for word in token.decode("utf-8", "surrogateescape").split():
                for end in range(2, len(word) + 1):
                    prefix = word[:end]
                    found = words.get(prefix)
                    if found is None:
                        words[prefix] = {word: count}
                    else:
                        found[word] = found.get(word, 0) + count
        return iter(words.items())

    def reduce(self, a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
        if len(a) < len(b):  # copy the larger, add the smaller
            a, b = b, a
        merged = dict(a)
        for word, count in b.items():
            merged[word] = merged.get(word, 0) + count
        return merged

    def finish(self, prefix: str, counts: dict[str, int]) -> list[list[Any]]:
        top = self.params["top"]
        if len(counts) > top:
            ranked = heapq.nsmallest(top, counts.items(), key=_rank)
        else:  # by word, then (stably) by count, highest first
            ranked = sorted(sorted(counts.items()), key=itemgetter(1), reverse=True)
        return [[word, count] for word, count in ranked]


def _rank(item: tuple[str, int]) -> tuple[int, str]:
    word, count = item
    return -count, word
