"""The Kafka half: the launcher, topic tools, produce and consume, checked against Kafka's own Java tools."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from confluent_kafka import Producer

from mrkafka.cli import main
from mrkafka.core.serdes import serialize_long
from mrkafka.devtools.launcher import Cluster
from mrkafka.devtools.tools import tool_command
from mrkafka.errors import SetupError
from mrkafka.kafka import admin
from tests.helpers import free_ports, messy_corpus, mrkafka, murmur2, to_positive

pytestmark = pytest.mark.integration

CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"


def cli(*args: str) -> tuple[int, bytes, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout_bytes, result.stderr


def java_consume(bootstrap: str, topic: str, count: int, *extra: str) -> bytes:
    cmd = tool_command(
        CONSOLE_CONSUMER,
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic,
        "--from-beginning",
        "--max-messages",
        str(count),
        "--timeout-ms",
        "20000",
        *extra,
    )
    return subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout


def test_topic_lifecycle(bootstrap: str, topic_name: str) -> None:
    b = ["--bootstrap-servers", bootstrap]
    code, _, err = cli("topic", "create", topic_name, "--partitions", "3", "--config", "cleanup.policy=compact", *b)
    assert code == 0, err
    code, out, _ = cli("topic", "list", *b)
    assert topic_name in out.decode().split()
    code, out, _ = cli("topic", "describe", topic_name, *b)
    text = out.decode()
    assert "PartitionCount: 3" in text and "cleanup.policy=compact" in text and "Isr: 0" in text
    assert cli("topic", "alter", topic_name, "--partitions", "5", *b)[0] == 0
    assert len(admin.describe_topic(bootstrap, topic_name).partitions) == 5
    assert cli("topic", "delete", topic_name, *b)[0] == 0
    assert topic_name not in admin.list_topics(bootstrap)


def test_topic_errors(bootstrap: str, topic_name: str) -> None:
    b = ["--bootstrap-servers", bootstrap]
    admin.create_topic(bootstrap, topic_name)
    code, _, err = cli("topic", "create", topic_name, *b)
    assert code == 9 and "already exists" in err and err.count("\n") == 1
    code, _, err = cli("topic", "describe", "no-such-topic", *b)
    assert code == 9 and err == "mrkafka: error: topic no-such-topic does not exist\n"
    code, _, err = cli("topic", "create", topic_name + "-rf", "--replication-factor", "3", *b)
    assert code == 7 and "replication factor of 3" in err
    code, _, err = cli("topic", "alter", topic_name, "--partitions", "1", *b)
    assert code == 7 and err.startswith(f"mrkafka: error: cannot alter topic {topic_name}: Topic already has 1")
    code, _, err = cli("consume", "--topic", "no-such-topic", "--from-beginning", *b)
    assert code == 9 and "does not exist" in err


def test_unreachable_broker_is_a_quick_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        started = time.monotonic()
        code, _, err = cli("topic", "list", "--bootstrap-servers", f"127.0.0.1:{port}")
    assert code == 8 and err.startswith("mrkafka: error: no Kafka broker answers at") and err.count("\n") == 1
    assert time.monotonic() - started < 15


def test_produce_reads_back_identically_through_kafkas_console_consumer(
    bootstrap: str, topic_name: str, tmp_path: Path
) -> None:
    data = messy_corpus(lines=500)
    path = tmp_path / "in.txt"
    path.write_bytes(data)
    admin.create_topic(bootstrap, topic_name, partitions=1)
    code, _, err = cli("produce", "--topic", topic_name, "--input", str(path), "--bootstrap-servers", bootstrap)
    lines = [line[:-1] if line.endswith(b"\r") else line for line in data.split(b"\n")]
    assert code == 0 and f"wrote {len(lines)} records" in err
    assert java_consume(bootstrap, topic_name, len(lines)) == b"".join(line + b"\n" for line in lines)
    code, out, _ = cli(
        "consume", "--topic", topic_name, "--from-beginning", "--timeout-ms", "1000", "--bootstrap-servers", bootstrap
    )
    assert out == b"".join(line + b"\n" for line in lines)
    path.write_bytes(b"one line\n")
    code, _, err = cli("produce", "--topic", topic_name, "--input", str(path), "--bootstrap-servers", bootstrap)
    assert code == 0 and "wrote 1 record to" in err, err


def test_keyed_records_land_where_mrkafkas_partitioner_predicts(
    bootstrap: str, topic_name: str, tmp_path: Path
) -> None:
    admin.create_topic(bootstrap, topic_name, partitions=6)
    keys = [f"key{i}".encode() for i in range(200)] + ["é".encode(), b"21", b"foobar"]
    stdin = b"".join(k + b"," + b"v%d\n" % i for i, k in enumerate(keys))
    cmd = tool_command(
        CONSOLE_PRODUCER,
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic_name,
        "--reader-property",
        "parse.key=true",
        "--reader-property",
        "key.separator=,",
    )
    subprocess.run(cmd, input=stdin, capture_output=True, check=True, timeout=60)
    code, out, _ = cli(
        "consume",
        "--topic",
        topic_name,
        "--from-beginning",
        "--print-key",
        "--print-partition",
        "--max-messages",
        str(len(keys)),
        "--bootstrap-servers",
        bootstrap,
    )
    seen = {}
    for line in out.splitlines():
        partition, key, _ = line.split(b"\t")
        seen[key] = int(partition.removeprefix(b"Partition:"))
    assert seen == {k: to_positive(murmur2(k)) % 6 for k in keys}

    # And mrkafka's own keyed produce agrees with Kafka's producer.
    path = tmp_path / "keyed.txt"
    path.write_bytes(stdin)
    cli("produce", "--topic", topic_name, "--input", str(path), "--key-sep", ",", "--bootstrap-servers", bootstrap)
    code, out, _ = cli(
        "consume",
        "--topic",
        topic_name,
        "--from-beginning",
        "--print-key",
        "--print-partition",
        "--max-messages",
        str(2 * len(keys)),
        "--bootstrap-servers",
        bootstrap,
    )
    pairs = {tuple(line.split(b"\t")[:2]) for line in out.splitlines()}
    assert pairs == {(b"Partition:%d" % p, k) for k, p in seen.items()}


def test_long_values_print_as_numbers_through_kafkas_long_deserializer(bootstrap: str, topic_name: str) -> None:
    admin.create_topic(bootstrap, topic_name)
    values = [0, 1, -1, 42, 2**63 - 1, -(2**63)]

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for v in values:
        producer.produce(topic_name, serialize_long(v), b"k")
    assert producer.flush(30) == 0
    out = java_consume(
        bootstrap,
        topic_name,
        len(values),
        "--value-deserializer",
        "org.apache.kafka.common.serialization.LongDeserializer",
    )
    assert out.decode().split() == [str(v) for v in values]
    code, out, _ = cli(
        "consume",
        "--topic",
        topic_name,
        "--from-beginning",
        "--value-format",
        "long",
        "--max-messages",
        str(len(values)),
        "--bootstrap-servers",
        bootstrap,
    )
    assert out.decode().split() == [str(v) for v in values]


def test_up_status_down_through_the_cli(tmp_path: Path) -> None:
    port = free_ports(1)
    data = ["--data-dir", str(tmp_path / "k")]
    code, out, err = cli("kafka", "up", "--port", str(port), *data)
    try:
        assert code == 0, err
        assert out.decode().strip() == f"127.0.0.1:{port}"
        code, out, _ = cli("kafka", "status", *data)
        assert code == 0 and "running (pid" in out.decode()
        code, _, err = cli("kafka", "up", "--port", str(port + 1), *data)
        assert code == 6 and "holds a cluster" in err
    finally:
        code, _, err = cli("kafka", "down", *data)
    assert code == 0 and "stopped 1 broker(s)" in err
    code, out, _ = cli("kafka", "status", *data)
    assert code == 1 and "stopped" in out.decode()
    assert not Cluster.load(tmp_path / "k").pids()
    # Started again without --port: the port it had.
    code, out, err = cli("kafka", "up", *data)
    try:
        assert code == 0 and out.decode().strip() == f"127.0.0.1:{port}", err
    finally:
        assert cli("kafka", "down", *data)[0] == 0
    assert not Cluster.load(tmp_path / "k").pids()


def test_a_taken_port_is_refused(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(SetupError, match=f"port {port} on 127.0.0.1 is taken; pick another with --port$"):
            Cluster(tmp_path / "k", 1, port).start()
        # A taken metrics port names the option that chose it.
        free = free_ports(1)
        with pytest.raises(SetupError, match=f"port {port} on 127.0.0.1 is taken; pick another with --metrics-port"):
            Cluster(tmp_path / "m", 1, free, metrics_port=port).start()


def test_three_brokers_keep_writing_with_one_down(kafka_cluster3, topic_name: str, tmp_path: Path) -> None:
    bootstrap = kafka_cluster3.bootstrap_servers
    admin.create_topic(bootstrap, topic_name, partitions=3, replication_factor=3, configs={"min.insync.replicas": "2"})
    assert all(len(p.isr) == 3 for p in admin.describe_topic(bootstrap, topic_name).partitions)
    path = tmp_path / "in.txt"
    path.write_bytes(b"".join(b"line %d\n" % i for i in range(1000)))
    kafka_cluster3.stop(node_id=2)
    try:
        alive = ",".join(bootstrap.split(",")[:2])
        code, _, err = cli("produce", "--topic", topic_name, "--input", str(path), "--bootstrap-servers", alive)
        assert code == 0, err
        code, out, _ = cli(
            "consume", "--topic", topic_name, "--from-beginning", "--max-messages", "1000", "--bootstrap-servers", alive
        )
        assert sorted(out.splitlines()) == sorted(b"line %d" % i for i in range(1000))
    finally:
        kafka_cluster3.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(len(p.isr) == 3 for p in admin.describe_topic(bootstrap, topic_name).partitions):
            break
        time.sleep(0.5)
    assert all(len(p.isr) == 3 for p in admin.describe_topic(bootstrap, topic_name).partitions)


def test_topics_get_the_brokers_replication_and_their_configs_change_in_place(kafka_cluster3, topic_name: str) -> None:
    tool = ["kafka", "tool", "--data-dir", str(kafka_cluster3.data_dir)]
    b = ["--bootstrap-servers", kafka_cluster3.bootstrap_servers]
    assert cli("topic", "create", topic_name, "--partitions", "2", "--config", "retention.ms=60000", *b)[0] == 0
    described = mrkafka(*tool, "kafka-topics", "--describe", "--topic", topic_name)
    assert "ReplicationFactor: 3" in described.stdout, described.stderr  # the brokers' default, on 3 brokers

    def configs() -> dict[str, str]:  # as Kafka's kafka-configs shows them
        shown = mrkafka(*tool, "kafka-configs", "--entity-type", "topics", "--entity-name", topic_name, "--describe")
        return dict(re.findall(r"^\s+([\w.]+)=(\S*) sensitive=", shown.stdout, re.M))

    change = ["--config", "max.compaction.lag.ms=1000", "--config", "cleanup.policy=compact"]
    code, _, err = cli("topic", "alter", topic_name, *change, "--delete-config", "retention.ms", *b)
    assert code == 0, err
    assert configs() == {"max.compaction.lag.ms": "1000", "cleanup.policy": "compact"}
    code, _, err = cli("topic", "alter", topic_name, "--config", "retention.ms=5", "--config", "no.such.config=1", *b)
    assert code == 7 and "Unknown topic config name: no.such.config" in err and err.count("\n") == 1, err
    code, _, err = cli("topic", "alter", topic_name, "--config", "segment.ms=abc", *b)
    assert code == 7 and "Invalid value abc for configuration segment.ms" in err, err
    code, _, err = cli(
        "topic", "alter", topic_name, "--config", "retention.ms=5", "--delete-config", "retention.ms", *b
    )
    assert (code, err) == (2, "mrkafka: error: --config and --delete-config both name retention.ms\n")
    code, _, err = cli("topic", "alter", topic_name, *b)
    assert code == 2 and err.count("\n") == 1, err
    assert configs() == {"max.compaction.lag.ms": "1000", "cleanup.policy": "compact"}  # each refused whole


def test_kafkas_own_tools_run_as_a_course_writes_them(kafka_cluster3, topic_name: str) -> None:
    bootstrap = kafka_cluster3.bootstrap_servers
    tool = ["kafka", "tool", "--data-dir", str(kafka_cluster3.data_dir)]
    create = ["--create", "--topic", topic_name, "--partitions", "6", "--replication-factor", "2"]
    made = mrkafka(*tool, "kafka-topics.sh", *create)
    assert made.returncode == 0, made.stderr
    partitions = admin.describe_topic(bootstrap, topic_name).partitions
    assert len(partitions) == 6 and {len(set(p.replicas)) for p in partitions} == {2}
    keyed = ["--property", "parse.key=true", "--property", "key.separator=:"]
    sent = mrkafka(*tool, "console-producer", "--topic", topic_name, *keyed, stdin="K1:V1\nK2:V2\n")
    assert sent.returncode == 0, sent.stderr
    code, out, err = cli(
        "consume",
        "--topic",
        topic_name,
        "--from-beginning",
        "--print-key",
        "--max-messages",
        "2",
        "--bootstrap-servers",
        bootstrap,
    )
    assert code == 0 and sorted(out.splitlines()) == [b"K1\tV1", b"K2\tV2"], err

    old = mrkafka(*tool, "kafka-topics", "--zookeeper", "localhost:2181", "--list")
    assert (old.returncode, old.stderr) == (
        2,
        f"mrkafka: error: kafka-topics has no --zookeeper (Kafka 4 runs without ZooKeeper): "
        f"give --bootstrap-server {bootstrap} instead\n",
    )
    old = mrkafka(*tool, "kafka-console-producer", "--broker-list", "localhost:9092", "--topic", topic_name)
    assert old.returncode == 2 and "has no --broker-list" in old.stderr
    unknown = mrkafka(*tool, "kafka-zookeeper-shell")
    assert unknown.returncode == 2 and unknown.stderr.startswith(
        "mrkafka: error: no Kafka tool 'kafka-zookeeper-shell'"
    )
    assert unknown.stderr.count("\n") == 1


def test_the_compaction_demo_compacts_within_seconds(kafka_cluster3, topic_name: str, tmp_path: Path) -> None:
    """The README's demo: a compacted topic whose cleaner runs once a record comes after a
    segment's 100 ms; Kafka's console consumer then reads the last value of each key only."""
    bootstrap = kafka_cluster3.bootstrap_servers
    b = ["--bootstrap-servers", bootstrap]
    fast = ["segment.ms=100", "min.cleanable.dirty.ratio=0.01", "delete.retention.ms=100"]
    code, _, err = cli(
        "topic", "create", topic_name, "--config", "cleanup.policy=compact", *(f"--config={c}" for c in fast), *b
    )
    assert code == 0, err
    records = [(b"K1", b"V1"), (b"K2", b"V2"), (b"K1", b"V3"), (b"K2", b"V4"), (b"K1", b"V5")], [(b"K3", b"V6")]
    for batch in records:
        (tmp_path / "in.txt").write_bytes(b"".join(k + b":" + v + b"\n" for k, v in batch))
        code, _, err = cli("produce", "--topic", topic_name, "--input", str(tmp_path / "in.txt"), "--key-sep", ":", *b)
        assert code == 0, err
        time.sleep(0.2)  # past segment.ms: the next record rolls the segment, which the cleaner may then compact
    flat = [record for batch in records for record in batch]
    kept = [k + b"\t" + v for i, (k, v) in enumerate(flat) if all(k != later for later, _ in flat[i + 1 :])]
    read_all = tool_command(
        CONSOLE_CONSUMER,
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic_name,
        "--from-beginning",
        "--formatter-property",
        "print.key=true",
        "--timeout-ms",
        "3000",
    )
    deadline = time.monotonic() + 60
    while True:
        read = subprocess.run(read_all, capture_output=True, check=True, timeout=60).stdout.splitlines()
        if read == kept or time.monotonic() > deadline:
            break
    assert read == kept
