"""Every job in jobs/ runs unchanged in batch and in a bounded stream, with identical results."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from mrkafka.batch import run_batch
from mrkafka.devtools.console import consume, produce_lines
from mrkafka.io.lookup import lookup
from mrkafka.job import JobSpec, load_job, parse_params
from mrkafka.kafka import admin
from mrkafka.settings import BatchSettings, StreamSettings
from mrkafka.stream import run_stream
from tests.helpers import ROOT, WORDCOUNT, messy_corpus, read_parts

pytestmark = pytest.mark.integration

JOBS = ROOT / "jobs"
DATA = JOBS / "data"


def run_both(
    job: str,
    data: Path,
    tmp_path: Path,
    env: dict,
    runner: str,
    key_field: int | None = None,
    params: tuple[str, ...] = (),
) -> tuple[Path, Path]:
    """Batch and bounded-stream outputs of ``job`` over ``data``; their part files must be identical."""
    spec = JobSpec(load_job(JOBS / job), parse_params(params))
    run_batch(spec, BatchSettings(inputs=[str(data)], output=tmp_path / "B", runner=runner, block_size=64))
    admin.create_topic(env["bootstrap"], env["input_topic"], partitions=3)
    produce_lines(
        env["bootstrap"],
        env["input_topic"],
        str(data),
        key_sep="," if key_field else None,
        progress=False,
        key_field=key_field,
    )
    run_stream(spec, StreamSettings(until_end=True, commit_interval_ms=200, output=tmp_path / "S", **env))
    for name in ("part-r-00000", "part-r-00001"):
        assert (tmp_path / "B" / name).read_bytes() == (tmp_path / "S" / name).read_bytes(), name
    return tmp_path / "B", tmp_path / "S"


def counter(output: Path, group: str, name: str) -> int:
    return json.loads((output / "_COUNTERS.json").read_text()).get(group, {}).get(name, 0)


@pytest.fixture
def env(ray_cluster, bootstrap: str, topic_name: str, tmp_path: Path) -> dict:
    return {
        "bootstrap": bootstrap,
        "input_topic": topic_name,
        "output_topic": f"{topic_name}-out",
        "application_id": f"{topic_name}-app",
        "state_dir": str(tmp_path / "state"),
    }


def test_odd_sum(env: dict, tmp_path: Path, runner: str) -> None:
    batch, stream = run_both("odd_sum.py", DATA / "odd_numbers.txt", tmp_path, env, runner)
    assert read_parts(batch) == {b"odd_sum": b"39"}
    assert counter(batch, "odd_sum", "bad_records") == counter(stream, "odd_sum", "bad_records") == 1


def test_sales_by_city(env: dict, tmp_path: Path, runner: str) -> None:
    batch, stream = run_both("sales_by_city.py", DATA / "sales.jsonl", tmp_path, env, runner)
    rows = {k.decode(): json.loads(v) for k, v in read_parts(batch).items()}
    assert rows == {
        "BLR": {"total": 5800.5, "sales": 2},
        "DEL": {"total": 1200, "sales": 1},
        "BOM": {"total": 700, "sales": 1},
    }
    assert counter(batch, "sales_by_city", "bad_records") == counter(stream, "sales_by_city", "bad_records") == 3


def test_cdc_table_keeps_the_latest_row_and_deletes(env: dict, tmp_path: Path, runner: str) -> None:
    batch, _ = run_both("cdc_table.py", DATA / "cdc.txt", tmp_path, env, runner, key_field=2)
    assert read_parts(batch) == {b"10": b"Mukesh Kumar", b"11": b"Suresh", b"13": b"Priya S"}
    out = admin.describe_topic(env["bootstrap"], env["output_topic"])
    assert out.configs["cleanup.policy"] == "compact"
    buf = io.BytesIO()
    consume(
        env["bootstrap"],
        env["output_topic"],
        buf,
        from_beginning=True,
        timeout_ms=2000,
        print_key=True,
        key_format="long",
    )
    latest = dict(line.split(b"\t", 1) for line in buf.getvalue().splitlines())
    # Values are JSON (the job's serde); the delete of 12 is a tombstone (a null value).
    assert latest == {b"10": b'"Mukesh Kumar"', b"11": b'"Suresh"', b"12": b"null", b"13": b'"Priya S"'}


def test_cdc_events_of_an_id_are_ordered_by_position_not_arrival() -> None:
    job = load_job(JOBS / "cdc_table.py")()
    events = [next(iter(job.map(offset, line))) for offset, line in [(0, "i,1,a"), (10, "u,1,b"), (20, "d,1,")]]
    values = [value for _, value in events]
    for order in ([0, 1, 2], [2, 1, 0], [1, 2, 0]):
        merged = values[order[0]]
        for i in order[1:]:
            merged = job.reduce(merged, values[i])
        assert job.finish(1, merged) is None


def test_prefix_index_and_lookup(env: dict, tmp_path: Path, runner: str) -> None:
    data = tmp_path / "names.txt"
    data.write_text("Mukesh Mukund Mukesh\nMumbai Mukesh Mukund Muzaffar Mud Mug Mukta\nmu Mu\n")
    batch, _ = run_both("prefix_index.py", data, tmp_path, env, runner)
    ((key, _, completions),) = lookup(batch, "Mu")
    assert key == "Mu" and completions == [["Mukesh", 3], ["Mukund", 2], ["Mu", 1], ["Mud", 1], ["Mug", 1]]
    assert lookup(batch, "Mukes") == [("Mukes", 0, [["Mukesh", 3]])]
    assert lookup(batch, "Mx") == []
    # One edit from "Mukex": "Muke" (delete x) and "Mukes" (x -> s); "Mukesh" is two away.
    assert [(k, d) for k, d, _ in lookup(batch, "Mukex", fuzzy=1)] == [("Muke", 1), ("Mukes", 1)]
    assert ("Mukesh", 2) in [(k, d) for k, d, _ in lookup(batch, "Mukex", fuzzy=2)]


def test_wordcount_with_kafka_streams_demo_tokenizer(runner: str, tmp_path: Path) -> None:
    data = messy_corpus(seed=11, lines=800) + b"\nHello, hello WORLD! it's snake_case x\xc3\xa9y"
    (tmp_path / "in.txt").write_bytes(data)
    params = parse_params(["lower=true", r"pattern=\W+"])
    for vectorize, out in ((True, "v"), (False, "r")):
        spec = JobSpec(load_job(WORDCOUNT), params, vectorize=vectorize)
        run_batch(
            spec,
            BatchSettings(inputs=[str(tmp_path / "in.txt")], output=tmp_path / out, runner=runner, block_size=4096),
        )
    assert read_parts(tmp_path / "v") == read_parts(tmp_path / "r")
    expected: dict[bytes, int] = {}
    for line in data.split(b"\n"):  # the oracle: Java's toLowerCase then split("\\W+") on ASCII text
        for word in re.split(rb"[^A-Za-z0-9_]+", line.lower()):
            if word:
                expected[word] = expected.get(word, 0) + 1
    assert {k: int(v) for k, v in read_parts(tmp_path / "v").items()} == expected
    assert b"hello" in expected and b"snake_case" in expected and b"x" in expected
