"""Expected counts for each tokenizer, derived from the baseline's ``Counter`` over ``bytes.split()``.

A whitespace-free word re-tokenizes on its own, so every peer's expected counts follow from
the baseline's without reading the corpus again: a peer that decodes UTF-8 with replacement
(Spark, or Ray Data on a cleaned copy) sees each word decoded that way. mrkafka's demo
parameters lowercase ASCII letters and split on ``\\W+`` over bytes; Kafka Streams'
WordCountDemo decodes UTF-8 with replacement, lowercases with Unicode's rules (``İ`` becomes
``i`` and a combining dot, the Kelvin sign ``k``) and splits on ``\\W+``, ASCII-only in Java's
default mode.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

__all__ = ["TOKENIZERS", "derive", "hadoop_counts", "java_split_empty_words"]

_NON_WORD = re.compile(rb"[^A-Za-z0-9_]+")
_JAVA_NON_WORD = re.compile(r"[^A-Za-z0-9_]+")


def _replacement(word: bytes) -> Iterable[bytes]:
    return [word.decode("utf-8", "replace").encode()]


def _demo(word: bytes) -> Iterable[bytes]:
    return [w for w in _NON_WORD.split(word.lower()) if w]


def _java(word: bytes) -> Iterable[bytes]:
    # Java's String.toLowerCase and Python's str.lower follow the same Unicode mappings; what
    # is not ASCII after them is \W, bytes that are not UTF-8 (U+FFFD) too.
    return [w.encode() for w in _JAVA_NON_WORD.split(word.decode("utf-8", "replace").lower()) if w]


TOKENIZERS: dict[str, Callable[[bytes], Iterable[bytes]]] = {
    "bytes.split": lambda word: [word],
    "utf-8 replace, split": _replacement,
    "lower, \\W+": _demo,
    "Java lower, \\W+": _java,
}


def derive(baseline: dict[bytes, int], tokenizer: str) -> dict[bytes, int]:
    """The counts ``tokenizer`` gives for the corpus whose ``bytes.split()`` counts are ``baseline``."""
    split = TOKENIZERS[tokenizer]
    counts: dict[bytes, int] = {}
    for word, n in baseline.items():
        for token in split(word):
            counts[token] = counts.get(token, 0) + n
    return counts


_WORD_CHAR = re.compile(r"[A-Za-z0-9_]")


def java_split_empty_words(path) -> int:
    """How many empty words WordCountDemo counts: Java's ``line.split("\\W+")`` of the
    lowercased line keeps a leading empty string when the line starts with a non-word
    character and has a word after it, and returns ``[""]`` for an empty line; trailing empty
    strings it drops. A line is a record as ``mrkafka produce`` writes it: without its ``\\n``
    or ``\\r\\n`` (so a line of a lone ``\\r`` is an empty record)."""
    empty = 0
    with open(path, "rb") as f:
        for raw in f:
            raw = raw[:-1] if raw.endswith(b"\n") else raw
            raw = raw[:-1] if raw.endswith(b"\r") else raw
            line = raw.decode("utf-8", "replace").lower()
            if not line or (not _WORD_CHAR.match(line) and _WORD_CHAR.search(line)):
                empty += 1
    return empty


_TOKENIZER_DELIMITERS = re.compile(r"[ \t\n\r\f]+")


def hadoop_counts(baseline: dict[bytes, int], path) -> dict[bytes, int]:
    """What Hadoop's WordCount counts: ``StringTokenizer`` over lines decoded as UTF-8 with
    replacement. Its delimiters are ``bytes.split()``'s whitespace but the vertical tab, so
    the baseline's words decoded that way, except on lines that hold a vertical tab (read
    again here; a line of Hadoop's ends at ``\n``, ``\r`` or both, all delimiters too)."""
    counts = derive(baseline, "utf-8 replace, split")
    with open(path, "rb") as f:
        for line in f:
            if b"\x0b" not in line:
                continue
            for word in line.split():
                token = word.decode("utf-8", "replace").encode()
                counts[token] -= 1
                if not counts[token]:
                    del counts[token]
            for token in _TOKENIZER_DELIMITERS.split(line.decode("utf-8", "replace")):
                if token:
                    counts[token.encode()] = counts.get(token.encode(), 0) + 1
    return counts
