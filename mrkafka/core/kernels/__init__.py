"""Compiled loops of the vectorized path, over the buffers of Arrow binary arrays.

numba compiles each loop to machine code at its first use; ``cache=True`` keeps that code on
disk (beside this module, or in numba's cache directory where this one is read-only), so
later processes load it in milliseconds. Every loop takes keys of any length, with no Python
per key, and takes and gives Arrow and numpy arrays:

- ``count_words(lines)``: the distinct words of some lines, as ``bytes.split()`` cuts them,
  with the number of times each occurs: split, hash and count in one pass over the bytes;
- ``group_sum(keys, values)``: one row per distinct key with the int64 sum of its values,
  and its murmur2; ``None`` where a sum would leave int64 (nothing wraps);
- ``murmur2(keys)``: Kafka's murmur2 of every key;
- ``split_lines(piece)``: the lines of a piece of a file, without their line endings;
- ``sort_indices(keys)``: the order of keys by their bytes;
- ``text_lines(keys, texts)``: the lines of a text part;
- ``code_points``, ``code_point_order`` and ``trie``: what a part's lookup index is built of.

One module a family: ``hash``, ``group`` (word count, sums by key), ``text`` (lines),
``sort``, ``trie``; ``arrays`` views Arrow arrays' buffers.
"""

from __future__ import annotations

from mrkafka.core.kernels.arrays import binary_parts
from mrkafka.core.kernels.group import count_words, group_sum
from mrkafka.core.kernels.hash import murmur2
from mrkafka.core.kernels.sort import sort_indices
from mrkafka.core.kernels.text import split_lines, text_lines
from mrkafka.core.kernels.trie import code_point_order, code_points, trie

__all__ = [
    "binary_parts",
    "code_point_order",
    "code_points",
    "count_words",
    "group_sum",
    "murmur2",
    "sort_indices",
    "split_lines",
    "text_lines",
    "trie",
]
