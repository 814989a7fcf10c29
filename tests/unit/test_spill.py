"""Spilled runs and their merge (``mrkafka.batch.spill``), against a ``Counter`` and Python's sort."""

from __future__ import annotations

import collections
import os
import random

import pytest

from mrkafka.batch import spill
from mrkafka.batch.spill import Spills
from mrkafka.core.aggregate import Aggregation
from mrkafka.core.partial import Rows, partial_from_pairs
from mrkafka.job import Job


class Sum(Job):
    aggregate = "sum"


class PySum(Job):
    def reduce(self, a, b):
        return a + b


@pytest.mark.parametrize("job", [Sum, PySum])
def test_more_runs_than_the_fan_in_merge_into_each_keys_sum_in_key_order(
    job: type[Job], monkeypatch: pytest.MonkeyPatch
) -> None:
    """40 runs (three merge passes at a fan-in of 16), batches of 7 rows, keys shared between
    runs or not, values ints in some runs and floats in others (the Python reduce only)."""
    monkeypatch.setattr(spill, "RUN_BATCH_ROWS", 7)
    rng = random.Random(3)
    keys = [b"k%d" % rng.randrange(10**6) for _ in range(300)] + [b"", b"\xff\xfe", b"k"]
    expected: collections.Counter = collections.Counter()
    spills = Spills(Aggregation(job()), "test")
    spilled = 0
    for run in range(40):
        chosen = rng.sample(keys, rng.randrange(1, 80))
        floats = job is PySum and run % 3 == 0
        values = [rng.randrange(100) + (0.5 if floats else 0) for _ in chosen]
        expected.update(dict(zip(chosen, values)))
        spills.spill(partial_from_pairs(chosen, values, "bytes"))
        spilled += len(chosen)
    directory = spills.directory
    assert len(spills.runs) == 40 and oct(os.stat(directory).st_mode & 0o777) == "0o700"
    rows = [(key, value) for chunk in spills.merged() for key, value in zip(*_rows(chunk))]
    assert [key for key, _ in rows] == sorted(expected)
    assert dict(rows) == dict(expected)
    assert spills.records > spilled  # the first passes' merged runs were written too
    spills.close()
    assert not os.path.exists(directory)


def _rows(chunk) -> tuple[list[bytes], list]:
    rows = chunk if isinstance(chunk, Rows) else Rows.of(chunk)
    return rows.keys, rows.values


def test_a_map_task_past_its_combine_budget_hands_rows_on_uncombined(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a budget below a split's distinct keys the map side combines what fits and hands
    the rest on (more combine output records than keys); the reducers still count every word."""
    from mrkafka.batch import run_batch
    from mrkafka.core import map_side
    from mrkafka.io.splits import pieces
    from mrkafka.job import JobSpec, load_job
    from mrkafka.settings import BatchSettings
    from tests.helpers import WORDCOUNT, oracle_wordcount, read_parts, real_text

    data = real_text(400_000)
    (tmp_path / "in.txt").write_bytes(data)
    monkeypatch.setattr(map_side, "COMBINE_BYTES", 4096)
    monkeypatch.setattr("mrkafka.batch.tasks.pieces", lambda block: pieces(block, 8192))  # many batches a split
    settings = BatchSettings(inputs=[str(tmp_path / "in.txt")], output=tmp_path / "out", runner="inline")
    report = run_batch(JobSpec(load_job(WORDCOUNT)), settings, progress=False)
    expected = oracle_wordcount(data)
    assert {k: int(v) for k, v in read_parts(tmp_path / "out").items()} == dict(expected)
    assert report.counters.get(("Map-Reduce Framework", "Combine output records")) > len(expected)


class Last(Job):
    aggregate = "last"


class Appended(Job):
    def reduce(self, a, b):
        return a + b


@pytest.mark.parametrize("job", [Last, Appended])
def test_merge_passes_keep_the_order_values_came_in(job: type[Job], monkeypatch: pytest.MonkeyPatch) -> None:
    """40 runs, three merge passes: each key's values merge in the order of the runs that hold
    them, as they would without spilling (the oracle: the runs' values in that order)."""
    monkeypatch.setattr(spill, "RUN_BATCH_ROWS", 7)
    rng = random.Random(5)
    keys = [b"k%d" % i for i in range(60)]
    expected: dict[bytes, object] = {}
    spills = Spills(Aggregation(job()), "test")
    for run in range(40):
        chosen = rng.sample(keys, rng.randrange(1, 30))
        values = [run if job is Last else [run] for _ in chosen]
        for key, value in zip(chosen, values):
            expected[key] = value if job is Last else expected.get(key, []) + value
        spills.spill(partial_from_pairs(chosen, values, "bytes"))
    rows = dict(row for chunk in spills.merged() for row in zip(*_rows(chunk)))
    spills.close()
    assert rows == expected
