"""Exactly once, proven by killing and stalling the processes of stream runs.

The soaks (``tests/soak.py``) start a broker of their own; the stall and zombie tests a
cluster of their own. Each ends with a bounded run compared with batch.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, IsolationLevel, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from mrkafka.kafka import admin
from mrkafka.stream.reducer import KEY_KIND_HEADER
from mrkafka.stream.workers.map_worker import IDLE_COMMIT_S
from tests.hanging import abort, allow_unverified_batches, leave_open, open_transactions
from tests.helpers import messy_corpus, oracle_wordcount, real_text
from tests.integration.test_stream_faults import _check_output, _halves, _produce
from tests.soak import SCRIPTED, SoakResult, compare_with_oracle, soak
from tests.stream_process import StreamRun, committed_sum, retrying, wait_committed

pytestmark = pytest.mark.integration

APP = "outage"  # the application the faults tests' bounded check runs


@pytest.mark.parametrize("brokers", [1, 3])
def test_exactly_once_survives_kills_of_every_process(tmp_path: Path, brokers: int) -> None:
    result = soak(tmp_path, kills=8, guarantee="exactly-once", seed=3, brokers=brokers)
    print(result.report())
    assert {f"point {point}" for point in (*SCRIPTED, "finish", "commit-output")} <= set(result.kills)
    assert sum(result.kills.values()) >= 8
    assert result.passed, result.report()


def test_the_soak_sees_what_at_least_once_gets_wrong(tmp_path: Path) -> None:
    # A map worker killed after producing and before committing its offsets replays input
    # whose blocks were already counted: the soak must find those keys.
    result = soak(tmp_path, kills=3, guarantee="at-least-once", seed=3, points=SCRIPTED[:1])
    print(result.report())
    assert result.kills[f"point {SCRIPTED[0]}"] == 1
    assert result.differing_parts > 0 and not result.passed


def _reducers_caught_up(bootstrap: str, run: StreamRun, timeout: float = 240) -> None:
    """Until the reducers committed the repartition topic's last stable offsets."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, ends = retrying(admin.topic_offsets, bootstrap, f"{APP}-repartition", "read_committed")
        if committed_sum(bootstrap, f"{APP}-reducers", f"{APP}-repartition") >= sum(ends.values()):
            return
        assert run.process.poll() is None, run.tail()
        time.sleep(0.2)
    pytest.fail("the reducers did not catch up: " + run.tail())


def _stalled(flag: Path, run: StreamRun, timeout: float = 120) -> int:
    """The pid of the process that stopped itself at its fault point (written to ``flag``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if flag.exists() and flag.read_bytes().endswith(b"\n"):
            return int(flag.read_bytes())
        assert run.process.poll() is None, run.tail()
        time.sleep(0.1)
    pytest.fail("no process reached its fault point: " + run.tail())


def _check(bootstrap: str, inputs: list[Path], tmp_path: Path, reducers: int = 2) -> None:
    """The bounded run's parts and the output topic, read_committed, equal the oracle's counts
    (and the parts batch's); no transaction is left open."""
    _check_output(bootstrap, inputs, tmp_path, reducers)
    result = compare_with_oracle(bootstrap, tmp_path, inputs, SoakResult(), app=APP)
    assert result.passed, result.report()


def test_a_map_worker_stalled_past_its_session_is_fenced(cluster, ray_cluster, tmp_path: Path) -> None:
    bootstrap = cluster.bootstrap_servers
    admin.create_topic(bootstrap, "in", partitions=2)
    first, second = _halves(seed=41)
    inputs = [_produce(bootstrap, "in", first, tmp_path / "first.txt")]
    # The worker stops itself with its blocks written in a transaction it has not committed.
    flag = tmp_path / "stalled"
    stall = {"MRKAFKA_FAULT": "map-produced:1:stop", "MRKAFKA_FAULT_ONCE": str(flag)}
    with StreamRun(bootstrap, APP, tmp_path / "state", tmp_path / "run.log", env=stall) as run:
        stalled = _stalled(flag, run)
        inputs.append(_produce(bootstrap, "in", second[: len(second) // 2], tmp_path / "second.txt"))
        # Past its 10 s session its partitions move; their new producers fence it and commit the input.
        wait_committed(bootstrap, APP, run)
        inputs.append(_produce(bootstrap, "in", second[len(second) // 2 :], tmp_path / "third.txt"))
        os.kill(stalled, signal.SIGCONT)  # it goes on committing: fenced, it must rejoin and write nothing
        wait_committed(bootstrap, APP, run)
        assert run.stop() == 0, run.tail()
        assert "task migrated=" in run.tail()  # the worker's own account of being fenced
    _check(bootstrap, inputs, tmp_path)


def test_a_zombie_reducer_is_fenced_by_its_replacement(cluster, ray_cluster, tmp_path: Path) -> None:
    bootstrap = cluster.bootstrap_servers
    admin.create_topic(bootstrap, "in", partitions=2)
    first, second = _halves(seed=43)
    parts = [first] + [second[len(second) * i // 3 : len(second) * (i + 1) // 3] for i in range(3)]
    inputs = [_produce(bootstrap, "in", parts[0], tmp_path / "in0.txt")]
    one, flag = ("--reducers", "1"), tmp_path / "stalled"
    # The reducer stops itself with changelog and output records in an open transaction.
    stall = {"MRKAFKA_FAULT": "reduce-produced:1:stop", "MRKAFKA_FAULT_ONCE": str(flag)}
    with StreamRun(bootstrap, APP, tmp_path / "state-old", tmp_path / "old.log", *one, env=stall) as old:
        zombie = _stalled(flag, old)
        inputs.append(_produce(bootstrap, "in", parts[1], tmp_path / "in1.txt"))
        # A second run of the application: its reducer fences the stalled one and takes over.
        with StreamRun(bootstrap, APP, tmp_path / "state", tmp_path / "new.log", *one) as new:
            wait_committed(bootstrap, APP, new)
            _reducers_caught_up(bootstrap, new)
            os.kill(zombie, signal.SIGCONT)  # it goes on committing where it stopped
            inputs.append(_produce(bootstrap, "in", parts[2], tmp_path / "in2.txt"))
            assert old.process.wait(timeout=180) == 7, old.tail()
            assert "another instance took over repartition partition 0" in old.tail()
            inputs.append(_produce(bootstrap, "in", parts[3], tmp_path / "in3.txt"))
            wait_committed(bootstrap, APP, new)
            _reducers_caught_up(bootstrap, new)
            assert new.stop() == 0, new.tail()
    _check(bootstrap, inputs, tmp_path, reducers=1)


def _records_in(bootstrap: str, topic: str) -> int:
    """How many records ``topic`` holds, read_committed (confluent-kafka's consumer, not ours)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "counted", "isolation.level": "read_committed"})
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        tps = [TopicPartition(topic, p) for p in partitions]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=30)[1] for tp in tps}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        count = 0
        while [tp for tp in consumer.position(tps) if tp.offset < ends[tp.partition]]:
            count += sum(1 for m in consumer.consume(100_000, 0.5) if m.error() is None)
        return count
    finally:
        consumer.close()


def test_counters_count_each_committed_record_once_when_workers_are_killed(cluster, tmp_path: Path) -> None:
    # A map worker dies between producing its blocks and committing them (its fault point), and
    # both reducers are SIGKILLed once they have committed: the counters of the bounded run
    # still count every committed record once, as Hadoop's invariants and the oracle say.
    bootstrap = cluster.bootstrap_servers
    admin.create_topic(bootstrap, "in", partitions=2)
    data = messy_corpus(seed=47, lines=6000) + b"\n" + real_text(6 << 20)
    path = _produce(bootstrap, "in", data if data.endswith(b"\n") else data + b"\n", tmp_path / "in.txt")
    data = path.read_bytes()
    flag, metrics = tmp_path / "killed", tmp_path / "run.prom"
    fault = {"MRKAFKA_FAULT": "map-produced:3", "MRKAFKA_FAULT_ONCE": str(flag)}
    options = ("--until-end", "--output", str(tmp_path / "S"), "--metrics-file", str(metrics))
    with StreamRun(bootstrap, APP, tmp_path / "state", tmp_path / "run.log", *options, env=fault) as run:
        _stalled(flag, run)  # the map worker killed itself
        deadline = time.monotonic() + 120
        while not (committed_sum(bootstrap, f"{APP}-reducers", f"{APP}-repartition") and run.workers("ReduceWorker")):
            assert run.process.poll() is None and time.monotonic() < deadline, run.tail()
            time.sleep(0.1)
        for pid in run.workers("ReduceWorker"):
            os.kill(pid, signal.SIGKILL)
        assert run.process.wait(timeout=600) == 0, run.tail()
    restarts = re.findall(r'restarts_total\{application="outage",role="(\w+)"\} (\S+)', metrics.read_text())
    assert {role: float(n) for role, n in restarts} == {"map": 1.0, "reduce": 2.0}, run.tail()

    framework = json.loads((tmp_path / "S" / "_COUNTERS.json").read_text())
    hadoop, job = framework["Map-Reduce Framework"], framework["wordcount"]
    counts = oracle_wordcount(data)
    assert hadoop["Map input records"] == data.count(b"\n")
    assert job["words"] == sum(counts.values())
    assert hadoop["Map output records"] == hadoop["Combine input records"]
    assert hadoop["Combine output records"] == hadoop["Reduce input records"]
    assert hadoop["Reduce input groups"] == len(counts)
    assert hadoop["Reduce output records"] == _records_in(bootstrap, "out")


def _stable_and_high(bootstrap: str, topic: str, partition: int) -> tuple[int, int]:
    """A partition's last stable offset and high watermark, as confluent-kafka's admin lists them."""
    client, tp = AdminClient({"bootstrap.servers": bootstrap}), TopicPartition(topic, partition)
    ends = []
    for isolation in (IsolationLevel.READ_COMMITTED, IsolationLevel.READ_UNCOMMITTED):
        (future,) = client.list_offsets({tp: OffsetSpec.latest()}, isolation_level=isolation).values()
        ends.append(future.result(timeout=30).offset)
    return ends[0], ends[1]


def test_an_idle_map_workers_keep_alive_closes_its_transaction_left_open(cluster, tmp_path: Path) -> None:
    # A transaction of map worker 0's producer left open in a repartition partition (as Kafka
    # 4.3 leaves one around a lone broker's restart, KAFKA-20734; made here on purpose, see
    # tests/hanging.py) stops every read_committed reader there. The worker is idle: its
    # keep-alive, a transaction over every repartition partition, must close it.
    bootstrap, (node,) = cluster.bootstrap_servers, cluster.nodes
    allow_unverified_batches(bootstrap, node.node_id)
    admin.create_topic(bootstrap, "in", partitions=2)
    first, second = _halves(seed=53)
    inputs = [_produce(bootstrap, "in", first, tmp_path / "first.txt")]
    repartition = f"{APP}-repartition"
    with StreamRun(bootstrap, APP, tmp_path / "state", tmp_path / "run.log") as run:
        wait_committed(bootstrap, APP, run)
        _reducers_caught_up(bootstrap, run)
        start = leave_open(bootstrap, node.node_id, repartition, 0, f"{APP}-map-0")
        stable, high = _stable_and_high(bootstrap, repartition, 0)
        assert stable == start < high  # read_committed readers stop at the open transaction
        deadline = time.monotonic() + 3 * IDLE_COMMIT_S
        while open_transactions(bootstrap, repartition, 0):
            assert run.process.poll() is None and time.monotonic() < deadline, run.tail()
            time.sleep(1)
        stable, high = _stable_and_high(bootstrap, repartition, 0)
        assert stable == high
        inputs.append(_produce(bootstrap, "in", second, tmp_path / "second.txt"))
        wait_committed(bootstrap, APP, run)
        _reducers_caught_up(bootstrap, run)
        assert run.stop() == 0, run.tail()
    _check(bootstrap, inputs, tmp_path)


def test_a_reducer_restarted_past_a_transaction_left_open_in_its_changelog_keeps_its_store(
    cluster, tmp_path: Path
) -> None:
    # Another producer's transaction left open in changelog partition 0 hides every later record
    # there from read_committed readers, the reducer's own committed ones included. Restarted,
    # the reducer must keep its RocksDB store (not past the changelog's high watermark): wiped
    # and restored by a read_committed reader, it would lose what it committed after that point.
    bootstrap, (node,) = cluster.bootstrap_servers, cluster.nodes
    allow_unverified_batches(bootstrap, node.node_id)
    admin.create_topic(bootstrap, "in", partitions=2)
    first, second = _halves(seed=59)
    parts = [first, second[: len(second) // 2], second[len(second) // 2 :]]
    inputs = [_produce(bootstrap, "in", parts[0], tmp_path / "in0.txt")]
    changelog, options = f"{APP}-state-changelog", ("--state", "rocksdb", "--reducers", "1")
    intruder = Producer({"bootstrap.servers": bootstrap, "transactional.id": "intruder"})
    intruder.init_transactions(30)
    with StreamRun(bootstrap, APP, tmp_path / "state", tmp_path / "run1.log", *options) as run:
        wait_committed(bootstrap, APP, run)
        _reducers_caught_up(bootstrap, run)
        header = [(KEY_KIND_HEADER, b"bytes")]  # a tombstone of a key no input has, if it were ever read
        start = leave_open(bootstrap, node.node_id, changelog, 0, "intruder", b"intruder", header)
        inputs.append(_produce(bootstrap, "in", parts[1], tmp_path / "in1.txt"))
        wait_committed(bootstrap, APP, run)
        _reducers_caught_up(bootstrap, run)
        assert run.stop() == 0, run.tail()
    stable, high = _stable_and_high(bootstrap, changelog, 0)
    assert stable == start < high - 1  # the reducer's own records lie past the open transaction
    with StreamRun(bootstrap, APP, tmp_path / "state", tmp_path / "run2.log", *options) as run:
        inputs.append(_produce(bootstrap, "in", parts[2], tmp_path / "in2.txt"))
        wait_committed(bootstrap, APP, run)
        _reducers_caught_up(bootstrap, run)
        assert run.stop() == 0, run.tail()
    abort(bootstrap, changelog, 0, start)  # as an operator would, before the bounded check
    _check(bootstrap, inputs, tmp_path, reducers=1)
    assert "does not match" not in (tmp_path / "run2.log").read_text()  # the store was kept, not wiped


class _AbortFails:
    """A real transactional producer whose ``abort_transaction`` fails as librdkafka's does
    while another transaction call of it still hangs (a retriable error, not fatal)."""

    def __init__(self, producer: Producer) -> None:
        self._producer = producer

    def __getattr__(self, name: str):
        return getattr(self._producer, name)

    def abort_transaction(self, timeout: float) -> None:
        from confluent_kafka import KafkaError as RdKafkaError
        from confluent_kafka import KafkaException

        raise KafkaException(RdKafkaError(RdKafkaError._CONFLICT, "Conflicting txn operation in progress"))


@pytest.mark.parametrize("successor", [True, False], ids=["fenced", "no-successor"])
def test_a_producer_that_cannot_abort_is_fenced_and_its_transaction_ends_at_once(
    bootstrap: str, topic_name: str, successor: bool
) -> None:
    """Kafka's own ``kafka-transactions.sh describe-producers`` is the oracle: the transaction
    left open is gone as soon as ``abort`` returns, not at the coordinator's timeout (10
    minutes here); without a successor it would still be open."""
    from mrkafka.kafka.outbox import Outbox, transactional_producer

    admin.create_topic(bootstrap, topic_name, partitions=1)
    transactional_id = f"{topic_name}-map-0"

    def producer() -> Producer:
        return transactional_producer({"bootstrap.servers": bootstrap}, transactional_id, 30.0, 600_000, 1 << 20)

    outbox = Outbox(_AbortFails(producer()), True, 30.0, successor=producer if successor else None)
    outbox.start()
    outbox.append(topic_name, 0, b"k", b"never committed")
    outbox.flush()
    assert list(open_transactions(bootstrap, topic_name, 0).values()) == [0]
    assert outbox.abort() is successor
    left = open_transactions(bootstrap, topic_name, 0)
    if successor:
        assert left == {}
        assert _read_committed_end(bootstrap, topic_name) == 2  # the record and the abort marker
    else:
        assert list(left.values()) == [0]
        (start,) = left.values()
        abort(bootstrap, topic_name, 0, start)  # as an operator would, so that nothing is left open
    outbox.close()


def test_a_record_that_fails_without_its_delivery_report_fails_the_transaction(bootstrap: str, topic_name: str) -> None:
    """Within a transaction only each partition's last record asks for its delivery report
    (``Outbox.append_all``); librdkafka is relied on to fail the commit for any other. The
    oracle: a read_committed consumer (the same library, not mrkafka) sees nothing of it."""
    from confluent_kafka import KafkaException

    from mrkafka.kafka.outbox import Outbox, transactional_producer

    admin.create_topic(bootstrap, topic_name, partitions=2, configs={"max.message.bytes": "2000"})
    producer = transactional_producer({"bootstrap.servers": bootstrap}, f"{topic_name}-t", 30.0, 60_000, 1 << 20)
    outbox = Outbox(producer, True, 30.0)
    outbox.start()
    outbox.append_all(topic_name, [0, 1, 1], [b"a", b"b", b"c"], [b"fits"] * 3)
    assert outbox.flush() == {(topic_name, 0): 0, (topic_name, 1): 1}  # one report a partition
    producer.produce(topic_name, b"x" * 5000, b"big", partition=1)  # as an unreported record
    assert outbox.flush() == {}  # delivered, or failed, without a word
    with pytest.raises(KafkaException) as failed:
        outbox.commit([], None)
    assert failed.value.args[0].txn_requires_abort() and "Message size too large" in str(failed.value)
    assert outbox.abort()
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topic_name, "isolation.level": "read_committed"})
    consumer.assign([TopicPartition(topic_name, p, OFFSET_BEGINNING) for p in (0, 1)])
    assert [m.value() for m in consumer.consume(10, 5.0) if m.error() is None] == []
    consumer.close()
    outbox.close()


def _read_committed_end(bootstrap: str, topic: str) -> int:
    """The partition's last stable offset, as a read_committed reader sees it."""
    client = AdminClient({"bootstrap.servers": bootstrap})
    spec = {TopicPartition(topic, 0): OffsetSpec.latest()}
    result = client.list_offsets(spec, isolation_level=IsolationLevel.READ_COMMITTED)
    return next(iter(result.values())).result(timeout=30).offset
