"""The value encoding: every value a job may hold comes back equal and of the same type;
anything else is refused, and no bytes make ``decode`` run code."""

from __future__ import annotations

import collections
import math
import pickle
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mrkafka.core.values import UndecodableValue, UnsupportedValue, decode, encode
from tests.helpers import exploit_pickle

_hashable = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=8,
)
_values = st.recursive(
    _hashable | st.text(alphabet=st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF)),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner)
        | st.dictionaries(_hashable, inner, max_size=4)
        | st.sets(_hashable, max_size=4)
    ),
    max_leaves=20,
)


def _same(a, b) -> bool:
    """Equal, and of the same type all the way down (``1 == True == 1.0`` is not enough)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


@given(_values)
def test_every_value_comes_back_equal_and_of_its_type(value) -> None:
    assert _same(decode(encode(value)), value)


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1, 10**40, -(10**40), 2**63 - 1, -(2**63), float("nan")])
def test_numbers_beyond_64_bits_and_nan(value) -> None:
    assert _same(decode(encode(value)), value)


@pytest.mark.parametrize(
    "value,name",
    [
        (collections.Counter(a=1), "Counter"),
        (collections.namedtuple("Point", "x")(1), "Point"),
        ([1, {"k": object()}], "object"),
        (1j, "complex"),
        (lambda: 1, "function"),
    ],
)
def test_another_type_is_refused_by_name(value, name: str) -> None:
    with pytest.raises(UnsupportedValue, match=rf"^a {name} value \(.*\); values are made of int, float"):
        encode(value)


def test_no_bytes_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    exploit = exploit_pickle(marker)
    whole = encode({"a": [1, (2, 3)], "b": {4}})
    crafted = [
        exploit,
        pickle.dumps({"a": 1}),
        b"",
        b"\xc1",  # a byte msgpack never uses
        whole[:-1],  # truncated
        whole + b"\x01",  # trailing bytes
        b"\xd4\x09\x00",  # an extension type of no meaning
        b"\xd4\x01\x05",  # a "tuple" that holds no list
        b"\x91\xc7\x02\x02\x91\x90",  # a set of a list: unhashable
        b"\x81\x90\x01",  # a dict keyed by a list
    ]
    for data in crafted:
        with pytest.raises(UndecodableValue):
            decode(data)
    assert not marker.exists()
