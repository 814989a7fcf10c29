"""The stream engine end to end on the session's broker and Ray, against batch and the oracle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mrkafka.batch import run_batch
from mrkafka.errors import BadInputError, JobFailedError, TopicError
from mrkafka.job import JobSpec, load_job
from mrkafka.kafka import admin
from mrkafka.kafka.console import produce_lines
from mrkafka.kafka.launcher import tool_command
from mrkafka.stream import run_stream
from tests.helpers import PICKY_JOB, WORDCOUNT, messy_corpus, oracle_wordcount, read_parts, write_job

pytestmark = pytest.mark.integration

PARTS = ("part-r-00000", "part-r-00001")


@pytest.fixture
def stream_env(ray_cluster, bootstrap: str, topic_name: str, tmp_path: Path):
    """An input topic of 3 partitions and the names one stream run needs."""
    admin.create_topic(bootstrap, topic_name, partitions=3)
    return {"bootstrap": bootstrap, "input_topic": topic_name, "output_topic": f"{topic_name}-out",
            "application_id": f"{topic_name}-app", "state_dir": str(tmp_path / "state")}  # fmt: skip


def produce(env: dict, data: bytes, tmp_path: Path, name: str = "in.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    produce_lines(env["bootstrap"], env["input_topic"], str(path), progress=False)
    return path


def batch_wordcount(inputs: list[Path], out: Path) -> None:
    run_batch(JobSpec(load_job(WORDCOUNT)), [str(p) for p in inputs], out, runner="inline", block_size=4096)


def stream_wordcount(env: dict, **kw):
    kw.setdefault("reducers", 2)
    kw.setdefault("until_end", True)
    kw.setdefault("commit_interval_ms", 200)
    return run_stream(JobSpec(load_job(WORDCOUNT)), **env, **kw)


def assert_same_parts(a: Path, b: Path) -> None:
    for name in PARTS:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "_SUCCESS").exists()


def test_bounded_stream_and_batch_write_byte_identical_parts(stream_env: dict, tmp_path: Path) -> None:
    data = messy_corpus(lines=2000)
    path = produce(stream_env, data, tmp_path)
    report = stream_wordcount(stream_env, output=tmp_path / "S")
    batch_wordcount([path], tmp_path / "B")
    assert_same_parts(tmp_path / "S", tmp_path / "B")
    assert {k: int(v) for k, v in read_parts(tmp_path / "S").items()} == dict(oracle_wordcount(data))
    assert report.counters.get(("Map-Reduce Framework", "Map input records")) == data.count(b"\n") + 1
    assert report.latency_p50_ms is not None and report.latency_p99_ms >= report.latency_p50_ms

    # The output topic holds every key's latest count; Kafka's own consumer reads it with LongDeserializer.
    cmd = tool_command(
        "org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server", stream_env["bootstrap"],
        "--topic", stream_env["output_topic"], "--from-beginning", "--timeout-ms", "5000",
        "--formatter-property", "print.key=true",
        "--value-deserializer", "org.apache.kafka.common.serialization.LongDeserializer",
    )  # fmt: skip
    latest = {}
    for line in subprocess.run(cmd, capture_output=True, timeout=60).stdout.splitlines():
        key, _, value = line.rpartition(b"\t")
        latest[key] = int(value)
    assert latest == dict(oracle_wordcount(data))


def test_internal_topics_are_created_with_kafka_streams_names_and_policies(stream_env: dict, tmp_path: Path) -> None:
    produce(stream_env, b"a b\nb c\n", tmp_path)
    # An output topic may have any partition count (internal topics may not).
    admin.create_topic(stream_env["bootstrap"], stream_env["output_topic"], partitions=1)
    stream_wordcount(stream_env, reducers=3)
    _, output_ends = admin.topic_offsets(stream_env["bootstrap"], stream_env["output_topic"])
    assert output_ends == {0: 3}  # a, b, c
    app, bootstrap = stream_env["application_id"], stream_env["bootstrap"]
    repartition = admin.describe_topic(bootstrap, f"{app}-repartition")
    changelog = admin.describe_topic(bootstrap, f"{app}-state-changelog")
    assert len(repartition.partitions) == 3 and repartition.configs["cleanup.policy"] == "delete"
    assert len(changelog.partitions) == 3 and changelog.configs["cleanup.policy"] == "compact"
    with pytest.raises(TopicError, match="has 3 partitions, but this run needs 2"):
        stream_wordcount(stream_env, reducers=2)


@pytest.mark.parametrize("state", ["memory", "rocksdb"])
def test_a_new_run_restores_state_and_resumes_from_committed_offsets(
    stream_env: dict, tmp_path: Path, state: str
) -> None:
    data = messy_corpus(seed=3, lines=1500)
    half = data.index(b"\n", len(data) // 2)
    first = produce(stream_env, data[: half + 1], tmp_path, "first.txt")
    stream_wordcount(stream_env, state=state)
    second = produce(stream_env, data[half + 1 :], tmp_path, "second.txt")
    stream_wordcount(stream_env, state=state, output=tmp_path / "S")
    batch_wordcount([first, second], tmp_path / "B")
    assert_same_parts(tmp_path / "S", tmp_path / "B")


def test_sigterm_stops_gracefully_and_a_restart_finishes_the_same(stream_env: dict, tmp_path: Path) -> None:
    data = messy_corpus(seed=5, lines=20000)
    path = produce(stream_env, data, tmp_path)
    args = [sys.executable, "-m", "mrkafka.cli", "run", str(WORDCOUNT), "--stream",
            "--input-topic", stream_env["input_topic"], "--output-topic", stream_env["output_topic"],
            "--application-id", stream_env["application_id"], "--bootstrap-servers", stream_env["bootstrap"],
            "--commit-interval-ms", "100"]  # fmt: skip
    process = subprocess.Popen(args, stderr=subprocess.PIPE, env={**os.environ, "RAY_ADDRESS": ""})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        committed = admin.committed_offsets(
            stream_env["bootstrap"], stream_env["application_id"], stream_env["input_topic"]
        )
        if committed:
            break
        time.sleep(0.2)
    assert committed, "the unbounded run committed nothing"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err.decode()[-2000:]
    stream_wordcount(stream_env, output=tmp_path / "S")
    batch_wordcount([path], tmp_path / "B")
    assert_same_parts(tmp_path / "S", tmp_path / "B")


def test_killed_workers_are_restarted_and_nothing_is_lost(stream_env: dict, tmp_path: Path, ray_cluster) -> None:
    data = messy_corpus(seed=9, lines=40000)
    produce(stream_env, data, tmp_path)
    app = stream_env["application_id"]
    result: dict = {}

    def run() -> None:
        try:
            result["report"] = stream_wordcount(stream_env, output=tmp_path / "S", commit_interval_ms=100)
        except BaseException as exc:  # reported below
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    killed = set()
    deadline = time.monotonic() + 60
    while thread.is_alive() and len(killed) < 2 and time.monotonic() < deadline:
        committed = admin.committed_offsets(stream_env["bootstrap"], app, stream_env["input_topic"])
        if committed:
            for name in (f"mrkafka:{app}:reducer:0", f"mrkafka:{app}:mapper:0"):
                if name not in killed:
                    ray_cluster.kill(ray_cluster.get_actor(name), no_restart=False)
                    killed.add(name)
        time.sleep(0.05)
    thread.join(timeout=180)
    assert "error" not in result, result.get("error")
    assert killed == {f"mrkafka:{app}:reducer:0", f"mrkafka:{app}:mapper:0"}
    got = {k: int(v) for k, v in read_parts(tmp_path / "S").items()}
    expected = oracle_wordcount(data)
    assert got.keys() == expected.keys()
    assert all(got[k] >= n for k, n in expected.items())  # at least once: never lower than the truth


def test_a_missing_input_topic_is_a_clear_error(ray_cluster, bootstrap: str) -> None:
    with pytest.raises(TopicError, match="topic no-such-input does not exist"):
        run_stream(JobSpec(load_job(WORDCOUNT)), bootstrap=bootstrap, input_topic="no-such-input",
                   output_topic="x", until_end=True)  # fmt: skip


def test_output_needs_until_end(bootstrap: str, tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="--output needs --until-end"):
        run_stream(JobSpec(load_job(WORDCOUNT)), bootstrap=bootstrap, input_topic="t", output_topic="o",
                   output=tmp_path / "o")  # fmt: skip


def test_a_map_that_raises_stops_the_run_and_names_the_record(stream_env: dict, tmp_path: Path) -> None:
    job = write_job(tmp_path, PICKY_JOB, "picky.py")
    admin.delete_topic(stream_env["bootstrap"], stream_env["input_topic"])
    time.sleep(1)
    admin.create_topic(stream_env["bootstrap"], stream_env["input_topic"], partitions=1)
    produce(stream_env, b"good\n" * 10 + b"bad\n" + b"good\n", tmp_path)
    where = rf"\(topic {stream_env['input_topic']} partition 0 offset 10\)"
    with pytest.raises(JobFailedError, match=r"map raised ValueError: no bad lines " + where):
        run_stream(JobSpec(load_job(job)), until_end=True, reducers=1, **stream_env)
    committed = admin.committed_offsets(
        stream_env["bootstrap"], stream_env["application_id"], stream_env["input_topic"]
    )
    assert committed.get(0, 0) <= 10
