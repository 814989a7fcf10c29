"""The compiled loops against Python's own meaning of each step: ``bytes.split``, a dict of
sums, ``decode("utf-8", "surrogateescape")``, ``sorted``; on real text and on bytes that
hypothesis makes up."""

from __future__ import annotations

import collections

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from mrkafka.core import kernels
from tests.helpers import messy_corpus, murmur2, real_text

# Bytes that stress the tokenizer and the decoder: every ASCII whitespace (bytes.split's are
# 9-13 and 32; 28-31 are not whitespace to it), UTF-8 lead and continuation bytes.
_PIECES = [
    b" ",
    b"\t",
    b"\x0b",
    b"\x0c",
    b"\r",
    b"\x1c",
    b"a",
    b"Z",
    b"\xc3\xa9",
    b"\xe2\x82\xac",
    b"\xf0\x9f\x98\x80",
    b"\xed\xa0\x80",
    b"\xc0\xaf",
    b"\xe2\x82",
    b"\xff",
    b"\x80",
    b"\xf4\x90\x80\x80",
]
_BYTES = st.binary(max_size=40) | st.lists(st.sampled_from(_PIECES), max_size=20).map(b"".join)


def _lines(data: bytes) -> pa.Array:
    return pa.array(data.split(b"\n"), pa.binary())


def test_count_words_is_bytes_split_on_real_and_messy_text() -> None:
    for data in (real_text(1 << 20), messy_corpus(lines=1500)):
        lines = _lines(data)
        words, counts, read = kernels.count_words(lines)
        expected = collections.Counter(word for line in lines.to_pylist() for word in line.split())
        assert dict(zip(words.to_pylist(), counts.tolist())) == expected
        assert read == sum(expected.values()) and len(words) == len(expected)


@given(st.lists(_BYTES, max_size=30))
@settings(max_examples=300, deadline=None)
def test_count_words_is_bytes_split(lines: list[bytes]) -> None:
    array = pa.array(lines, pa.binary())
    words, counts, read = kernels.count_words(array.slice(1) if lines else array)  # an offset too
    expected = collections.Counter(word for line in lines[1:] for word in line.split())
    assert dict(zip(words.to_pylist(), counts.tolist())) == expected and read == sum(expected.values())


def test_group_sum_is_a_dict_of_sums_and_never_wraps() -> None:
    rng = np.random.default_rng(5)
    keys = [b"k%d" % i for i in rng.integers(0, 3000, 50_000)] + [b"", b"x" * 5000, b"x" * 5000]
    values = rng.integers(-(10**12), 10**12, len(keys))
    expected: dict[bytes, int] = collections.defaultdict(int)
    for key, value in zip(keys, values.tolist()):
        expected[key] += value
    got_keys, sums, hashes = kernels.group_sum(pa.array(keys, pa.binary()), values)
    assert dict(zip(got_keys.to_pylist(), sums.tolist())) == expected
    assert hashes.tolist() == [murmur2(key) & 0xFFFFFFFF for key in got_keys.to_pylist()]
    big = np.iinfo(np.int64).max
    assert kernels.group_sum(pa.array([b"a", b"b", b"a"]), np.array([big, 1, 1])) is None
    assert kernels.group_sum(pa.array([b"a", b"a"]), np.array([-big, -1]))[1].tolist() == [-big - 1]
    assert kernels.group_sum(pa.array([b"a", b"a"]), np.array([-big, -2])) is None


@given(st.lists(_BYTES, max_size=30))
@settings(max_examples=300, deadline=None)
def test_code_points_are_pythons_surrogateescape_decoding(keys: list[bytes]) -> None:
    points, offsets = kernels.code_points(pa.array(keys, pa.binary()))
    decoded = ["".join(map(chr, points[offsets[i] : offsets[i + 1]])) for i in range(len(keys))]
    assert decoded == [key.decode("utf-8", "surrogateescape") for key in keys]


@given(st.lists(_BYTES, max_size=60))
@settings(max_examples=300, deadline=None)
def test_sorts_are_byte_order_and_code_point_order(keys: list[bytes]) -> None:
    array = pa.array(keys, pa.binary())
    assert kernels.sort_indices(array).tolist() == sorted(range(len(keys)), key=keys.__getitem__)
    assert kernels.sort_indices(array).tolist() == pc.sort_indices(array).to_pylist()
    texts = [key.decode("utf-8", "surrogateescape") for key in keys]
    order = kernels.code_point_order(*kernels.code_points(array))
    assert order.tolist() == sorted(range(len(keys)), key=texts.__getitem__)


def test_sorts_on_real_text_keys() -> None:
    keys = sorted(set(real_text(1 << 20).split()), key=hash)  # a shuffled order
    array = pa.array(keys, pa.binary())
    assert [keys[i] for i in kernels.sort_indices(array)] == sorted(keys)
    texts = [key.decode("utf-8", "surrogateescape") for key in keys]
    assert [texts[i] for i in kernels.code_point_order(*kernels.code_points(array))] == sorted(texts)


@given(st.binary(max_size=200) | st.lists(st.sampled_from([b"a", b"\n", b"\r", b"\r\n", b"b c"])).map(b"".join))
@settings(max_examples=300, deadline=None)
def test_split_lines_is_splitlines_on_newline(data: bytes) -> None:
    expected = data.split(b"\n")
    if data.endswith(b"\n") or not data:
        expected.pop()
    expected = [line[:-1] if line.endswith(b"\r") else line for line in expected]
    assert kernels.split_lines(data).to_pylist() == expected


def test_text_lines_are_key_tab_text() -> None:
    keys = pa.array([b"a", b"", b"\xff\tb", b"long" * 100], pa.binary()).slice(1)
    texts = pa.array([b"0", b"1", b"", b"-3"], pa.large_binary()).slice(1)
    assert kernels.text_lines(keys, texts).tobytes() == b"\t1\n\xff\tb\t\nlonglonglong" + b"long" * 97 + b"\t-3\n"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.binary(max_size=12), max_size=300), min_size=1, max_size=6))
def test_a_key_table_numbers_keys_as_a_dict_would(batches) -> None:
    from mrkafka.core.kernels.table import KeyTable

    table, rows = KeyTable(), {}
    for batch in batches:
        got = table.add(pa.array(batch, pa.binary())).tolist()
        assert got == [rows.setdefault(key, len(rows)) for key in batch]
    assert table.keys().to_pylist() == list(rows)
    probe = [b"\xff" * 13, *rows]
    assert table.find(pa.array(probe, pa.binary())).tolist() == [-1, *range(len(rows))]


@settings(deadline=None)  # the first call compiles the kernel
@given(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=200))
def test_pack_ints_is_msgpacks_encoding(values) -> None:
    import msgpack

    from mrkafka.core.kernels.msgpack import pack_ints

    edges = [0, 127, 128, 255, 256, 2**16, 2**32, -32, -33, -128, -129, -(2**15) - 1, -(2**31) - 1]
    values = edges + values
    assert pack_ints(np.array(values, np.int64)).to_pylist() == [msgpack.packb(v) for v in values]


_NOT_INT64 = st.one_of(
    st.integers(2**63, 2**64 - 1), st.floats(allow_nan=False), st.text(max_size=3), st.booleans(), st.none()
)


@settings(deadline=None)  # the first call compiles the kernel
@given(st.lists(st.one_of(st.integers(-(2**63), 2**63 - 1), _NOT_INT64), max_size=200), st.binary(max_size=3))
def test_unpack_ints_reads_msgpacks_int64s_and_nothing_else(values, tail) -> None:
    import msgpack

    from mrkafka.core.kernels.msgpack import unpack_ints

    encoded = [msgpack.packb(v) for v in values] + [b"", msgpack.packb(7) + tail, None]
    got, ok = unpack_ints(pa.array(encoded, pa.binary()))
    int64 = [type(v) is int and -(2**63) <= v < 2**63 for v in values]
    assert ok.tolist() == [*int64, False, not tail, False]
    assert [g for g, is_int in zip(got.tolist(), int64) if is_int] == [v for v, i in zip(values, int64) if i]


@settings(deadline=None)  # the first call compiles the kernel
@given(st.lists(st.tuples(st.integers(0, 20), st.integers(-(2**62), 2**62)), min_size=1, max_size=300))
def test_fold_merges_each_groups_values_in_order(rows) -> None:
    from mrkafka.core.kernels.table import FOLDS, fold

    groups = np.array([g for g, _ in rows], np.int64)
    values = np.array([v for _, v in rows], np.int64)
    for name, merge in (("sum", int.__add__), ("min", min), ("max", max), ("last", lambda a, b: b)):
        expected: dict[int, int] = {}
        left_int64 = False  # a sum on the way, not only the last one, left int64
        for g, v in rows:
            expected[g] = merge(expected[g], v) if g in expected else v
            left_int64 |= not -(2**63) <= expected[g] < 2**63
        out, seen, overflow = fold(groups, values, 21, FOLDS[name])
        assert overflow == left_int64
        if overflow:
            continue
        assert not overflow and {g: int(out[g]) for g in np.flatnonzero(seen)} == expected
