from __future__ import annotations

import os
import random

import numpy as np
import pyarrow as pa
import pytest

from mrkafka.core import kernels
from mrkafka.core.partition import partition_for
from tests.helpers import murmur2, to_positive

# The vectors of Kafka's own UtilsTest.testMurmur2.
KAFKA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize("data,expected", KAFKA_VECTORS.items())
def test_murmur2_matches_kafka(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


def test_vectorized_equals_scalar_for_every_length() -> None:
    rng = random.Random(3)
    keys = [os.urandom(rng.randint(0, 9)) for _ in range(2000)]
    keys += [os.urandom(n) for n in range(0, 200)] + [b"k" * 100_000, b""]
    arr = pa.array(keys, pa.binary())
    expected = np.array([murmur2(k) & 0xFFFFFFFF for k in keys], dtype=np.uint32)
    assert (kernels.murmur2(arr) == expected).all()
    # A sliced array starts at an offset into its buffers.
    assert (kernels.murmur2(arr.slice(17, 300)) == expected[17:317]).all()


def test_vectors_through_the_array_path() -> None:
    arr = pa.array(list(KAFKA_VECTORS), pa.string())
    got = kernels.murmur2(arr).astype(np.int64)
    expected = np.array([v & 0xFFFFFFFF for v in KAFKA_VECTORS.values()])
    assert (got == expected).all()


def test_partition_for_is_kafkas_formula() -> None:
    keys = [b"w%d" % i for i in range(5000)]
    for n in (1, 2, 7, 12):
        parts = partition_for(pa.array(keys, pa.binary()), n)
        assert parts.tolist() == [to_positive(murmur2(k)) % n for k in keys]


def test_null_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        kernels.murmur2(pa.array([b"a", None], pa.binary()))
