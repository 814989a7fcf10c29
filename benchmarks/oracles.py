"""Expected counts for each tokenizer, derived from the baseline's ``Counter`` over ``bytes.split()``.

A whitespace-free word re-tokenizes on its own, so every peer's expected counts follow from
the baseline's without reading the corpus again: a peer that decodes UTF-8 with replacement
(Spark, or Ray Data on a cleaned copy) sees each word decoded that way; Kafka Streams'
WordCountDemo lowercases and splits on ``\\W+`` (ASCII-only in Java's default mode).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

__all__ = ["TOKENIZERS", "derive", "java_split_empty_words"]

_NON_WORD = re.compile(rb"[^A-Za-z0-9_]+")


def _replacement(word: bytes) -> Iterable[bytes]:
    return [word.decode("utf-8", "replace").encode()]


def _demo(word: bytes) -> Iterable[bytes]:
    # Bytes that are not UTF-8 become U+FFFD in Java, which is \W: the same split as on bytes.
    return [w for w in _NON_WORD.split(word.lower()) if w]


TOKENIZERS: dict[str, Callable[[bytes], Iterable[bytes]]] = {
    "bytes.split": lambda word: [word],
    "utf-8 replace, split": _replacement,
    "lower, \\W+": _demo,
}


def derive(baseline: dict[bytes, int], tokenizer: str) -> dict[bytes, int]:
    """The counts ``tokenizer`` gives for the corpus whose ``bytes.split()`` counts are ``baseline``."""
    split = TOKENIZERS[tokenizer]
    counts: dict[bytes, int] = {}
    for word, n in baseline.items():
        for token in split(word):
            counts[token] = counts.get(token, 0) + n
    return counts


_WORD_CHAR = re.compile(rb"[A-Za-z0-9_]")


def java_split_empty_words(path) -> int:
    """How many empty words WordCountDemo counts: Java's ``line.split("\\W+")`` keeps a leading
    empty string when a line starts with a non-word character and has a word after it, and
    returns ``[""]`` for an empty line; trailing empty strings it drops."""
    empty = 0
    with open(path, "rb") as f:
        for line in f:
            line = line.rstrip(b"\n")
            if not line or (not _WORD_CHAR.match(line) and _WORD_CHAR.search(line)):
                empty += 1
    return empty
