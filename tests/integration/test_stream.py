"""The stream engine end to end on the session's broker and Ray, against batch and the oracle."""

from __future__ import annotations

import collections
import contextlib
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mrkafka.batch import run_batch
from mrkafka.devtools.console import consume, produce_lines
from mrkafka.devtools.tools import tool_command
from mrkafka.errors import BadInputError, JobFailedError, KafkaError, MrkafkaError, TopicError
from mrkafka.job import JobSpec, load_job
from mrkafka.kafka import admin
from mrkafka.settings import BatchSettings, StreamSettings
from mrkafka.stream import run_stream
from mrkafka.stream.queries import query
from tests.helpers import (
    PICKY_JOB,
    WORDCOUNT,
    cli,
    edit_distance,
    free_ports,
    messy_corpus,
    oracle_wordcount,
    read_parts,
    real_text,
    tricky_corpus,
    write_job,
)
from tests.stream_process import StreamRun

pytestmark = pytest.mark.integration


@pytest.fixture
def stream_env(ray_cluster, bootstrap: str, topic_name: str, tmp_path: Path):
    """An input topic of 3 partitions and the names one stream run needs."""
    admin.create_topic(bootstrap, topic_name, partitions=3)
    return {
        "bootstrap": bootstrap,
        "input_topic": topic_name,
        "output_topic": f"{topic_name}-out",
        "application_id": f"{topic_name}-app",
        "state_dir": str(tmp_path / "state"),
    }


def delete_topics(bootstrap: str, *topics: str) -> None:
    """Delete ``topics``, and wait until the brokers list none of them (a delete is asynchronous)."""
    for topic in topics:
        admin.delete_topic(bootstrap, topic)
    deadline = time.monotonic() + 60
    while set(topics) & set(admin.list_topics(bootstrap)):
        assert time.monotonic() < deadline, f"{topics} still listed 60 s after their deletion"
        time.sleep(0.1)


def produce(env: dict, data: bytes, tmp_path: Path, name: str = "in.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    produce_lines(env["bootstrap"], env["input_topic"], str(path), progress=False)
    return path


def batch_wordcount(inputs: list[Path], out: Path, reducers: int = 2) -> None:
    run_batch(
        JobSpec(load_job(WORDCOUNT)),
        BatchSettings(inputs=[str(p) for p in inputs], output=out, runner="inline", block_size=4096, reducers=reducers),
    )


def stream_wordcount(env: dict, **kw):
    kw.setdefault("reducers", 2)
    kw.setdefault("until_end", True)
    kw.setdefault("commit_interval_ms", 200)
    return run_stream(JobSpec(load_job(WORDCOUNT)), StreamSettings(**env, **kw))


def assert_same_parts(a: Path, b: Path, reducers: int = 2) -> None:
    for name in (f"part-r-{k:05d}" for k in range(reducers)):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "_SUCCESS").exists()


def test_bounded_stream_and_batch_write_byte_identical_parts(stream_env: dict, tmp_path: Path) -> None:
    # Real text (lines of 20 KB, words of 3 KB) and a 900 KB word: blocks of long keys once
    # outgrew Kafka's record limit and stopped the run.
    data = tricky_corpus()
    path = produce(stream_env, data, tmp_path)
    report = stream_wordcount(stream_env, output=tmp_path / "S")
    batch_wordcount([path], tmp_path / "B")
    assert_same_parts(tmp_path / "S", tmp_path / "B")
    assert {k: int(v) for k, v in read_parts(tmp_path / "S").items()} == dict(oracle_wordcount(data))
    assert report.counters.get(("Map-Reduce Framework", "Map input records")) == data.count(b"\n")
    assert report.latency_p50_ms is not None and report.latency_p99_ms >= report.latency_p50_ms

    # The output topic holds every key's latest count; Kafka's own consumer reads it with LongDeserializer.
    cmd = tool_command(
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        "--bootstrap-server",
        stream_env["bootstrap"],
        "--topic",
        stream_env["output_topic"],
        "--from-beginning",
        "--timeout-ms",
        "5000",
        "--isolation-level",
        "read_committed",
        "--formatter-property",
        "print.key=true",
        "--value-deserializer",
        "org.apache.kafka.common.serialization.LongDeserializer",
    )
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
    # a, b, c (the end offset also counts the transactions' commit markers)
    assert (
        consume(stream_env["bootstrap"], stream_env["output_topic"], io.BytesIO(), from_beginning=True, timeout_ms=2000)
        == 3
    )
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
    args = [
        sys.executable,
        "-m",
        "mrkafka.cli",
        "run",
        str(WORDCOUNT),
        "--stream",
        "--input-topic",
        stream_env["input_topic"],
        "--output-topic",
        stream_env["output_topic"],
        "--application-id",
        stream_env["application_id"],
        "--bootstrap-servers",
        stream_env["bootstrap"],
        "--commit-interval-ms",
        "100",
    ]
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


def test_killed_workers_are_restarted_and_count_exactly_once(stream_env: dict, tmp_path: Path, ray_cluster) -> None:
    data = messy_corpus(seed=9, lines=40000)
    produce(stream_env, data, tmp_path)
    app = stream_env["application_id"]
    result: dict = {}
    port = free_ports(1)

    def run() -> None:
        try:
            result["report"] = stream_wordcount(
                stream_env,
                output=tmp_path / "S",
                commit_interval_ms=100,
                metrics_port=port,
                metrics_file=str(tmp_path / "run.prom"),
            )
        except BaseException as exc:  # reported below
            result["error"] = exc

    def due(name: str) -> bool:
        """Whether to kill worker ``name`` now. The mapper at once: the map side ends as soon as
        the input is committed, a mapper's first pulled figures may come only just before that,
        and a worker restarted before any pull says so itself. The reducer (which lives to the
        run's end) once the driver pulled its figures, so that its restart is a new instance."""
        if "mapper" in name:
            return True
        page = ""
        with contextlib.suppress(OSError), urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as answer:
            page = answer.read().decode()
        return 'task="reduce-0"' in page

    thread = threading.Thread(target=run)
    thread.start()
    killed = set()
    deadline = time.monotonic() + 60
    while thread.is_alive() and len(killed) < 2 and time.monotonic() < deadline:
        committed = admin.committed_offsets(stream_env["bootstrap"], app, stream_env["input_topic"])
        if committed:
            for name in (f"mrkafka:{app}:mapper:0", f"mrkafka:{app}:reducer:0"):
                if name not in killed and due(name):
                    ray_cluster.kill(ray_cluster.get_actor(name), no_restart=False)
                    killed.add(name)
        time.sleep(0.05)
    thread.join(timeout=180)
    assert "error" not in result, result.get("error")
    assert killed == {f"mrkafka:{app}:reducer:0", f"mrkafka:{app}:mapper:0"}
    got = {k: int(v) for k, v in read_parts(tmp_path / "S").items()}
    assert got == dict(oracle_wordcount(data))  # exactly once: nothing lost, nothing counted twice
    # The metrics counted the reducer's restart (Prometheus' parser reads the run's final metrics
    # file). The run waits for its reducers, so the restarted one is always seen; a mapper may come
    # back only after the others consumed the input and the run stopped the map side: counted at
    # most once, then.
    restarts = {
        sample.labels["role"]: sample.value
        for family in text_string_to_metric_families((tmp_path / "run.prom").read_text())
        for sample in family.samples
        if sample.name == "mrkafka_worker_restarts_total"
    }
    assert restarts["reduce"] == 1 and restarts["map"] in (0, 1), restarts


def test_a_missing_input_topic_is_a_clear_error(ray_cluster, bootstrap: str) -> None:
    with pytest.raises(TopicError, match="topic no-such-input does not exist"):
        run_stream(
            JobSpec(load_job(WORDCOUNT)),
            StreamSettings(bootstrap=bootstrap, input_topic="no-such-input", output_topic="x", until_end=True),
        )


def test_output_needs_until_end(bootstrap: str, tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="--output needs --until-end"):
        run_stream(
            JobSpec(load_job(WORDCOUNT)),
            StreamSettings(bootstrap=bootstrap, input_topic="t", output_topic="o", output=tmp_path / "o"),
        )


def test_a_map_that_raises_stops_the_run_and_names_the_record(stream_env: dict, tmp_path: Path) -> None:
    job = write_job(tmp_path, PICKY_JOB, "picky.py")
    delete_topics(stream_env["bootstrap"], stream_env["input_topic"])
    admin.create_topic(stream_env["bootstrap"], stream_env["input_topic"], partitions=1)
    produce(stream_env, b"good\n" * 10 + b"bad\n" + b"good\n", tmp_path)
    where = rf"\(topic {stream_env['input_topic']} partition 0 offset 10\)"
    with pytest.raises(JobFailedError, match=r"map raised ValueError: no bad lines " + where):
        run_stream(JobSpec(load_job(job)), StreamSettings(until_end=True, reducers=1, **stream_env))
    committed = admin.committed_offsets(
        stream_env["bootstrap"], stream_env["application_id"], stream_env["input_topic"]
    )
    assert committed.get(0, 0) <= 10


# -- issue-by-issue: the loss paths and hangs of stream mode -----------------------------------


def _in_thread(call, timeout: float = 120.0):
    """Run ``call`` in a thread; return its result or raise its error; fail if it hangs."""
    result: dict = {}

    def target() -> None:
        try:
            result["value"] = call()
        except BaseException as exc:  # re-raised below
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"still running after {timeout} s"
    if "error" in result:
        raise result["error"]
    return result["value"]


def test_a_part_file_waits_for_the_reducer_to_be_restored(stream_env: dict, tmp_path: Path) -> None:
    import asyncio

    from mrkafka.stream.config import StreamConfig
    from mrkafka.stream.workers import ReduceWorker

    data = messy_corpus(seed=21, lines=3000)
    produce(stream_env, data, tmp_path)
    stream_wordcount(stream_env, reducers=1)  # state on the changelog, repartition committed
    env = stream_env
    config = StreamConfig.of(JobSpec(load_job(WORDCOUNT)), StreamSettings(reducers=1, **env))
    _, ends = admin.topic_offsets(env["bootstrap"], f"{env['application_id']}-repartition")

    async def restarted_reducer() -> bool:
        worker = ReduceWorker(config, 0)  # as Ray restarts it: empty, restoring
        part = asyncio.ensure_future(worker.write_part(str(tmp_path / "part"), "text", ends[0]))
        await asyncio.sleep(0.5)
        early = part.done()
        run = asyncio.ensure_future(worker.run())
        await part
        await worker.stop()
        await run
        return early

    assert not asyncio.run(restarted_reducer())
    got = {k: int(v) for k, v in (line.rsplit(b"\t", 1) for line in (tmp_path / "part").read_bytes().splitlines())}
    assert got == dict(oracle_wordcount(data))


def test_the_repartition_topic_keeps_records_until_reducers_delete_them(stream_env: dict, tmp_path: Path) -> None:
    app, bootstrap = stream_env["application_id"], stream_env["bootstrap"]
    # As an earlier version left it: the broker's default retention, which deletes unread records.
    admin.create_topic(bootstrap, f"{app}-repartition", partitions=2, configs={"cleanup.policy": "delete"})
    produce(stream_env, messy_corpus(seed=4, lines=2000), tmp_path)
    stream_wordcount(stream_env)
    repartition = admin.describe_topic(bootstrap, f"{app}-repartition")
    assert repartition.configs["retention.ms"] == "-1"
    begin, end = admin.topic_offsets(bootstrap, f"{app}-repartition")
    committed = admin.committed_offsets(bootstrap, f"{app}-reducers", f"{app}-repartition")
    assert all(end[k] > 0 for k in end)
    assert begin == committed == end  # read, committed, then deleted (Kafka's DeleteRecords)


def test_transactional_input_reaches_its_bounds(stream_env: dict, tmp_path: Path) -> None:
    # Each partition ends in a commit marker: no record at its bound - 1.
    from confluent_kafka import Producer

    env = stream_env
    producer = Producer({"bootstrap.servers": env["bootstrap"], "transactional.id": f"{env['input_topic']}-tx"})
    producer.init_transactions(30)
    for partition in range(2):
        for value, commit in ((b"kept kept", True), (b"aborted", False), (b"last", True)):
            producer.begin_transaction()
            producer.produce(env["input_topic"], value, partition=partition)
            if commit:  # the partition ends in a commit marker
                producer.commit_transaction(30)
            else:
                producer.abort_transaction(30)
    producer.close()
    report = _in_thread(lambda: stream_wordcount(env, output=tmp_path / "S"))
    assert {k: int(v) for k, v in read_parts(tmp_path / "S").items()} == {b"kept": 4, b"last": 2}
    assert report.counters.get(("Map-Reduce Framework", "Map input records")) == 4


def test_a_reducer_that_fails_ends_the_run_instead_of_hanging(stream_env: dict, tmp_path: Path) -> None:
    job = write_job(
        tmp_path,
        """
        from mrkafka import Job, StreamOptions
        class FinishFails(Job):
            stream = StreamOptions(value_serde="long")
            def map(self, offset, line):
                yield line, 1
            def reduce(self, a, b):
                return a + b
            def finish(self, key, value):
                if key == "bad":
                    raise ValueError("cannot finish")
                return value
    """,
    )
    produce(stream_env, b"good\nbad\n", tmp_path)
    with pytest.raises(JobFailedError, match=r"finish raised ValueError: cannot finish \(key 'bad'\)"):
        _in_thread(
            lambda: run_stream(
                JobSpec(load_job(job)), StreamSettings(until_end=True, output=tmp_path / "S", **stream_env)
            )
        )
    assert not (tmp_path / "S").exists()


def test_a_bounded_run_reads_every_transaction_of_the_repartition_topic(stream_env: dict, tmp_path: Path) -> None:
    """A transaction left open on the repartition topic (as one Kafka left without markers)
    holds read_committed readers before the map tasks' later commits: the run must not end
    at the last stable offset, short of them, but wait, and fail loudly at the task timeout."""
    from confluent_kafka import Producer

    env, app = stream_env, stream_env["application_id"]
    first, second = messy_corpus(seed=31, lines=500), messy_corpus(seed=32, lines=500)
    produce(env, first, tmp_path, "first.txt")
    stream_wordcount(env, reducers=1)  # the internal topics exist
    intruder = Producer(
        {"bootstrap.servers": env["bootstrap"], "transactional.id": f"{app}-x", "transaction.timeout.ms": 300_000}
    )
    intruder.init_transactions(30)
    intruder.begin_transaction()
    intruder.produce(f"{app}-repartition", None, partition=0)  # an empty record: reducers skip it
    assert intruder.flush(30) == 0
    produce(env, second, tmp_path, "second.txt")
    stuck = rf"{app}-repartition partition 0 holds records up to offset \d+, but read committed it stops at \d+ "
    with pytest.raises(KafkaError, match=stuck):
        stream_wordcount(env, reducers=1, task_timeout_s=10, output=tmp_path / "short")
    assert not (tmp_path / "short").exists()
    ended = threading.Timer(3, intruder.abort_transaction, args=(30,))  # while the next run waits
    ended.start()
    stream_wordcount(env, reducers=1, output=tmp_path / "S")
    ended.join()
    del intruder  # closed while its broker runs
    counts = {k: int(v) for k, v in read_parts(tmp_path / "S").items()}
    assert counts == dict(oracle_wordcount(first + second))


def test_a_bounded_run_on_a_terminal_shows_records_against_its_bounds(stream_env: dict, tmp_path: Path) -> None:
    import pty

    env = stream_env
    produce(env, messy_corpus(seed=41, lines=3000), tmp_path)
    records = sum(admin.topic_offsets(env["bootstrap"], env["input_topic"])[1].values())
    leader, follower = pty.openpty()
    command = [str(Path(sys.executable).parent / "mrkafka"), "run", str(WORDCOUNT), "--stream", "--until-end"]
    command += ["--input-topic", env["input_topic"], "--bootstrap-servers", env["bootstrap"], "--reducers", "2"]
    command += [
        "--application-id",
        env["application_id"],
        "--state-dir",
        env["state_dir"],
        "--output",
        str(tmp_path / "S"),
    ]
    run = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    shown = b""
    with contextlib.suppress(OSError):  # EIO once the run closed the terminal
        while chunk := os.read(leader, 65536):
            shown += chunk
    os.close(leader)
    assert run.wait(timeout=120) == 0, shown.decode(errors="replace")
    text = shown.decode(errors="replace")
    assert re.search(rf"records .*{records}/{records}.* [0-9,]+ records/s", text), text
    assert re.search(r"parts .*2/2", text), text


def test_rocksdb_state_of_another_changelog_is_not_kept(stream_env: dict, tmp_path: Path) -> None:
    env, bootstrap, app = stream_env, stream_env["bootstrap"], stream_env["application_id"]
    produce(env, b"old old words\n", tmp_path)
    stream_wordcount(env, state="rocksdb", reducers=1)
    # An application reset: its internal topics are recreated, its input is a new topic.
    delete_topics(bootstrap, f"{app}-repartition", f"{app}-state-changelog", env["output_topic"])
    fresh = {**env, "input_topic": env["input_topic"] + "-2"}
    admin.create_topic(bootstrap, fresh["input_topic"], partitions=1)
    produce(fresh, b"new words\n", tmp_path, "new.txt")
    stream_wordcount(fresh, state="rocksdb", reducers=1, output=tmp_path / "S")
    assert read_parts(tmp_path / "S") == {b"new": b"1", b"words": b"1"}


def test_rocksdb_state_is_not_kept_over_a_recreated_changelog_grown_past_it(stream_env: dict, tmp_path: Path) -> None:
    """After a reset, runs on another state directory fill the new changelog past the old
    store's checkpoint; at the old store's last offset the new changelog has a transaction
    marker, so the digest of the next record cannot tell the two changelogs apart."""
    env, bootstrap, app = stream_env, stream_env["bootstrap"], stream_env["application_id"]
    for n, line in enumerate([b"a\n", b"b\n"]):  # two commits: the store's last record is at offset 2
        produce(env, line, tmp_path, f"old{n}.txt")
        stream_wordcount(env, state="rocksdb", reducers=1)
    delete_topics(bootstrap, f"{app}-repartition", f"{app}-state-changelog", env["output_topic"])
    fresh = {**env, "input_topic": env["input_topic"] + "-2", "state_dir": str(tmp_path / "other")}
    admin.create_topic(bootstrap, fresh["input_topic"], partitions=1)
    for n, line in enumerate([b"x y\n", b"z\n"]):  # records at 0, 1 and 3, markers at 2 and 4
        produce(fresh, line, tmp_path, f"new{n}.txt")
        stream_wordcount(fresh, state="rocksdb", reducers=1)
    stream_wordcount({**fresh, "state_dir": env["state_dir"]}, state="rocksdb", reducers=1, output=tmp_path / "S")
    assert read_parts(tmp_path / "S") == {b"x": b"1", b"y": b"1", b"z": b"1"}


def test_64_input_partitions_and_16_reducers_on_2_map_workers(stream_env: dict, tmp_path: Path) -> None:
    # One transactional producer per worker, whatever the number of partitions: 2 map workers
    # share 64 input partitions (cooperative rebalancing), 16 reducers each own one.
    env = {**stream_env, "input_topic": stream_env["input_topic"] + "-64"}
    admin.create_topic(env["bootstrap"], env["input_topic"], partitions=64)
    data = messy_corpus(seed=64, lines=4000) + real_text(400_000)
    path = tmp_path / "in.txt"
    path.write_bytes(data)
    # Keyed by a line's first field, the lines spread over all 64 partitions; the value is the rest.
    produce_lines(env["bootstrap"], env["input_topic"], str(path), " ", progress=False)
    stream_wordcount(env, output=tmp_path / "S", reducers=16, mappers=2)
    expected: collections.Counter = collections.Counter()
    for line in data.split(b"\n"):
        key, sep, value = line.partition(b" ")
        expected.update((value if sep else key).split())
    assert {k: int(v) for k, v in read_parts(tmp_path / "S").items()} == dict(expected)
    assert len(list((tmp_path / "S").glob("part-r-*"))) == 16
    _, ends = admin.topic_offsets(env["bootstrap"], env["input_topic"])
    assert sum(1 for end in ends.values() if end > 0) == 64


def test_int_keys_sit_where_kafkas_own_producer_puts_them(stream_env: dict, tmp_path: Path) -> None:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    env, bootstrap = stream_env, stream_env["bootstrap"]
    ids = list(range(-20, 60))
    produce_keyed = tmp_path / "cdc.txt"
    produce_keyed.write_bytes(b"".join(b"i,%d,name%d\n" % (i, i) for i in ids))
    admin.create_topic(bootstrap, env["input_topic"] + "-cdc", partitions=2)
    produce_lines(bootstrap, env["input_topic"] + "-cdc", str(produce_keyed), ",", key_field=2, progress=False)
    admin.create_topic(bootstrap, env["output_topic"], partitions=3)
    run_stream(
        JobSpec(load_job(WORDCOUNT.parent / "cdc_table.py")),
        StreamSettings(until_end=True, reducers=2, **{**env, "input_topic": env["input_topic"] + "-cdc"}),
    )
    # The same keys through Kafka's own Java producer, LongSerializer keys, default partitioner
    # (ConsoleProducer sends keys as text: it has no key serializer).
    java_topic = env["output_topic"] + "-java"
    admin.create_topic(bootstrap, java_topic, partitions=3)
    cmd = tool_command(
        str(Path(__file__).parent / "java" / "LongKeyProducer.java"), bootstrap, java_topic, *map(str, ids)
    )
    subprocess.run(cmd, check=True, timeout=120, capture_output=True)

    def placement(topic: str) -> dict[bytes, int]:
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-placement"})
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(3)])
        try:
            got: dict[bytes, int] = {}
            while len(got) < len(ids):
                got.update({m.key(): m.partition() for m in consumer.consume(1000, 2.0) if m.error() is None})
            return got
        finally:
            consumer.close()

    ours, kafkas = placement(env["output_topic"]), placement(java_topic)
    assert ours == kafkas and len(set(ours.values())) == 3


def test_a_map_slower_than_the_session_timeout_keeps_its_partitions(stream_env: dict, tmp_path: Path) -> None:
    job = write_job(
        tmp_path,
        """
        import time
        from mrkafka import Job, StreamOptions
        class Slow(Job):
            stream = StreamOptions(value_serde="long")
            def map(self, offset, line):
                if line == "slow":
                    time.sleep(12)  # longer than the consumer's 10 s session timeout
                yield line, 1
            def reduce(self, a, b):
                return a + b
    """,
    )
    produce(stream_env, b"a\nslow\nb\n" * 2, tmp_path)
    report = _in_thread(
        lambda: run_stream(JobSpec(load_job(job)), StreamSettings(until_end=True, output=tmp_path / "S", **stream_env)),
        timeout=180,
    )
    assert read_parts(tmp_path / "S") == {b"a": b"2", b"b": b"2", b"slow": b"2"}
    assert not [c for c in report.counters.items() if c[0][0] == "Stream retries"]


def test_unkeyed_input_to_a_job_that_needs_keys_is_refused(stream_env: dict, tmp_path: Path) -> None:
    produce(stream_env, b"i,1,Mukesh\n", tmp_path)
    with pytest.raises(BadInputError, match="has no key, and cdc_table needs keyed input"):
        _in_thread(
            lambda: run_stream(
                JobSpec(load_job(WORDCOUNT.parent / "cdc_table.py")), StreamSettings(until_end=True, **stream_env)
            )
        )


def test_the_driver_keeps_one_admin_connection_for_the_run(
    stream_env: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The driver waits for mappers with a committed-offsets call four times a second: all on
    # one consumer of group APP, made once.
    from mrkafka.kafka import rdkafka

    made, asked = [], []
    new_consumer, committed_offsets = rdkafka.consumer, admin.Admin.committed_offsets

    def consumer(*args, **kwargs):
        made.append(kwargs.get("group"))
        return new_consumer(*args, **kwargs)

    def counted(self, group: str, topic: str) -> dict[int, int]:
        asked.append(group)
        return committed_offsets(self, group, topic)

    data = messy_corpus(lines=2000)
    produce(stream_env, data, tmp_path)
    monkeypatch.setattr(rdkafka, "consumer", consumer)
    monkeypatch.setattr(admin.Admin, "committed_offsets", counted)
    stream_wordcount(stream_env, output=tmp_path / "S")
    assert {k: int(v) for k, v in read_parts(tmp_path / "S").items()} == dict(oracle_wordcount(data))
    app = stream_env["application_id"]
    assert asked.count(app) >= 2 and made.count(app) == 1


def test_a_running_application_answers_lookups_from_its_state(stream_env: dict, tmp_path: Path) -> None:
    """Interactive queries: ``mrkafka lookup --application-id`` reads the reducers' committed
    state while the run goes on; once the input is processed it holds the oracle's counts."""
    env = stream_env
    data = messy_corpus(lines=300) + real_text(100_000)
    produce(env, data, tmp_path)
    counts = {word.decode("utf-8", "surrogateescape"): n for word, n in oracle_wordcount(data).items()}
    probes = [word for word, _ in collections.Counter(counts).most_common(5)] + ["Kafka", "\udcff\udcfe"]
    app, state = env["application_id"], env["state_dir"]
    extra = [
        "--input-topic",
        env["input_topic"],
        "--output-topic",
        env["output_topic"],
        "--reducers",
        "3",
        "--interactive-queries",
    ]
    with StreamRun(env["bootstrap"], app, Path(state), tmp_path / "run.log", *extra) as run:
        deadline = time.monotonic() + 180
        while True:
            try:
                answers = {word: query(app, state, word) for word in probes}
            except MrkafkaError as exc:  # the endpoint not written yet, or a reducer restoring
                answers = {"": str(exc)}
            expected = {word: [(word, 0, counts[word])] if word in counts else [] for word in probes}
            if answers == expected:
                break
            assert run.process.poll() is None and time.monotonic() < deadline, (answers, run.tail())
            time.sleep(0.5)
        rng = random.Random(3)
        for word in rng.sample(sorted(w for w in counts if 3 <= len(w) <= 12), 3):
            typo = word[:1] + word[2:] + "x"  # a deletion and an insertion
            near = [(k, edit_distance(typo, k), n) for k, n in counts.items() if abs(len(k) - len(typo)) <= 2]
            expected = sorted((row for row in near if row[1] <= 2), key=lambda row: (row[1], -row[2], row[0]))
            assert query(app, state, typo, 2) == expected
            code = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "mrkafka.cli",
                    "lookup",
                    "--application-id",
                    app,
                    "--state-dir",
                    state,
                    typo,
                    "--fuzzy",
                    "2",
                ],
                capture_output=True,
            )
            assert code.returncode == 0 and code.stdout.decode("utf-8", "surrogateescape").splitlines() == [
                f"{k}\t{n}" for k, _, n in expected
            ]
        assert_refusals(Path(state) / app / "query-endpoint.json", probes[0])
        assert run.stop() == 0, run.tail()
    code, err = cli("lookup", "--application-id", app, "--state-dir", state, probes[0])
    assert code == 1 and err.count("\n") == 1 and f"application {app} is not running" in err, err


def http_status(url: str, **headers: str) -> tuple[int, str]:
    """The status and body of ``GET url``, whatever the status."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def assert_refusals(endpoint_file: Path, key: str) -> None:
    """The query endpoint answers its token's holder, on its own host name, within bounds."""
    assert endpoint_file.stat().st_mode & 0o777 == 0o600
    endpoint = json.loads(endpoint_file.read_text())
    here = f"127.0.0.1:{endpoint['port']}"
    url = f"http://{here}/lookup?" + urllib.parse.urlencode({"key": key}, errors="surrogateescape")
    token = {"Authorization": f"Bearer {endpoint['token']}"}
    assert http_status(url)[0] == 401
    assert http_status(url, Authorization="Bearer " + "x" * len(endpoint["token"]))[0] == 401
    assert http_status(url, Host=f"rebound.example:{endpoint['port']}", **token)[0] == 403  # DNS rebinding
    assert http_status(url + "&fuzzy=3", **token)[0] == 400
    assert http_status(url.replace(urllib.parse.quote(key), "k" * 257), **token)[0] == 400
    assert http_status(url, **token)[0] == 200
    assert http_status(url, Host=f"localhost:{endpoint['port']}", **token)[0] == 200


def test_long_lookups_neither_stop_commits_nor_run_unbounded(stream_env: dict, tmp_path: Path) -> None:
    """Fuzzy look-ups over 300,000 keys, several at once, while the input grows: the reducers
    go on committing (no fencing, the later input counted), a look-up past --query-timeout is
    refused, and beyond 4 at once the endpoint says to ask again."""
    env = stream_env
    first = b"".join(b"k%06d x\n" % i for i in range(300_000))
    produce(env, first, tmp_path, "first.txt")
    app, state = env["application_id"], env["state_dir"]
    extra = ["--input-topic", env["input_topic"], "--output-topic", env["output_topic"], "--reducers", "2"]
    extra += ["--interactive-queries", "--query-timeout", "1", "--commit-interval-ms", "100"]
    with StreamRun(env["bootstrap"], app, Path(state), tmp_path / "run.log", *extra) as run:
        wait_for_answer(run, app, state, "x", [("x", 0, 300_000)])
        endpoint = json.loads((Path(state) / app / "query-endpoint.json").read_text())
        url = f"http://127.0.0.1:{endpoint['port']}/lookup?key=k12345&fuzzy=2"
        answers: list[tuple[int, str]] = []
        token = f"Bearer {endpoint['token']}"

        def ask() -> None:
            answers.append(http_status(url, Authorization=token))

        asking = [threading.Thread(target=ask) for _ in range(8)]
        for thread in asking:
            thread.start()
        produce(env, b"x\n" * 5000, tmp_path, "second.txt")  # committed while the look-ups scan
        for thread in asking:
            thread.join()
        refusals = sorted(json.loads(body)["error"].split(":")[0] for status, body in answers if status == 503)
        assert len(answers) == 8 and len(refusals) == 8, answers  # each too long for 1 s, or one too many
        assert "4 look-ups are running" in refusals and "the look-up took longer than 1 s" in refusals, refusals
        wait_for_answer(run, app, state, "x", [("x", 0, 305_000)])
        assert run.process.poll() is None and run.stop() == 0, run.tail()


def wait_for_answer(run: StreamRun, app: str, state: str, key: str, expected: list) -> None:
    deadline = time.monotonic() + 240
    while True:
        try:
            if query(app, state, key) == expected:
                return
        except MrkafkaError:  # the endpoint not written yet, or a reducer restoring
            pass
        assert run.process.poll() is None and time.monotonic() < deadline, run.tail()
        time.sleep(0.5)
