from __future__ import annotations

import collections
import random

import pyarrow as pa
import pytest

from mrkafka.core.aggregate import Accumulator, Aggregation
from mrkafka.core.partial import partial_from_arrow, partial_from_pairs
from mrkafka.job import Job
from tests.helpers import partial_to_pairs


class Sum(Job):
    aggregate = "sum"


class PyMax(Job):
    def reduce(self, a, b):
        return max(a, b)


class Last(Job):
    aggregate = "last"


class Pairs(Job):
    def reduce(self, a, b):
        return (a[0] + b[0], a[1] + b[1])


def random_rows(seed: int, n: int = 5000) -> tuple[list[str], list[int]]:
    rng = random.Random(seed)
    keys = [rng.choice(["a", "b", "\udcff", "é", "zz"]) + str(rng.randint(0, 40)) for _ in range(n)]
    return keys, [rng.randint(-5, 100) for _ in range(n)]


@pytest.mark.parametrize("vectorized", [True, False])
def test_combine_sums_like_a_counter(vectorized: bool) -> None:
    keys, values = random_rows(1)
    expected: collections.Counter = collections.Counter()
    for k, v in zip(keys, values):
        expected[k] += v
    combined = Aggregation(Sum(), vectorized).combine(partial_from_pairs(keys, values))
    assert dict(partial_to_pairs(combined)) == dict(expected)


def test_last_keeps_input_order() -> None:
    table = partial_from_pairs(["k", "j", "k", "k", "j"], [1, 2, 3, 4, 5])
    for vectorized in (True, False):
        assert dict(partial_to_pairs(Aggregation(Last(), vectorized).combine(table))) == {"k": 4, "j": 5}


def test_python_values_round_trip_through_the_value_encoding() -> None:
    table = partial_from_pairs([b"x", b"y", b"x"], [(1, 2), (3, 4), (10, 20)])
    combined = Aggregation(Pairs()).combine(table)
    assert dict(partial_to_pairs(combined)) == {b"x": (11, 22), b"y": (3, 4)}


def test_key_kinds_survive() -> None:
    for keys in (["a", "\udce9"], [b"a", b"\xe9"], [3, -7]):
        table = partial_from_pairs(keys, [1, 2])
        assert [k for k, _ in partial_to_pairs(table)] == keys


def test_arrow_map_output_with_integer_keys() -> None:
    table = partial_from_arrow(pa.table({"key": pa.array([10, 2]), "value": pa.array([1.5, 2.5])}))
    assert list(partial_to_pairs(table)) == [(10, 1.5), (2, 2.5)]


@pytest.mark.parametrize("job", [Sum(), PyMax()])
def test_accumulator_equals_one_combine(job: Job) -> None:
    aggregation = Aggregation(job)
    accumulator = Accumulator(aggregation)
    accumulator.MIN_MERGE_ROWS = 100  # force several merges
    all_keys, all_values = [], []
    for seed in range(20):
        keys, values = random_rows(seed, 300)
        all_keys += keys
        all_values += values
        accumulator.add(partial_from_pairs(keys, values))
    expected = dict(partial_to_pairs(aggregation.combine(partial_from_pairs(all_keys, all_values))))
    assert dict(partial_to_pairs(accumulator.result())) == expected
    assert accumulator.input_records == 20 * 300


def test_accumulator_switches_to_python_values() -> None:
    accumulator = Accumulator(Aggregation(Sum()))
    accumulator.add(partial_from_pairs(["a", "b"], [1, 2]))
    accumulator.add(partial_from_pairs(["a"], [0.5]))
    accumulator.add(partial_from_pairs(["b"], [10**30]))
    assert dict(partial_to_pairs(accumulator.result())) == {"a": 1.5, "b": 2 + 10**30}


class SumWithFailingReduce(Job):
    aggregate = "sum"

    def reduce(self, a, b):
        raise RuntimeError("reduce ran")


def test_per_record_runs_the_jobs_reduce_and_vectorized_its_aggregate() -> None:
    table = partial_from_pairs(["k", "k"], [1, 2])
    assert dict(partial_to_pairs(Aggregation(SumWithFailingReduce(), vectorized=True).combine(table))) == {"k": 3}
    with pytest.raises(RuntimeError, match="reduce ran"):
        Aggregation(SumWithFailingReduce(), vectorized=False).combine(table)
