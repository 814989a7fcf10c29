"""``mrkafka topic reassign`` on a cluster whose brokers have a course's ids (10, 20, 30), with
Kafka's own tools as the oracle: ``kafka-topics --describe`` for where the replicas are,
``kafka-configs`` for the throttles, ``kafka-reassign-partitions`` for files either side wrote."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from mrkafka.devtools.launcher import Cluster
from mrkafka.kafka import admin
from tests.helpers import free_ports, mrkafka

pytestmark = pytest.mark.integration

IDS = (10, 20, 30)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """Three brokers named 10, 20 and 30, as the course's reassignment files name them."""
    cluster = Cluster(tmp_path_factory.mktemp("course"), brokers=3, port=free_ports(3), broker_ids=IDS)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def kafka_tool(course: Cluster, *args: str) -> str:
    done = mrkafka("kafka", "tool", "--data-dir", str(course.data_dir), *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def replicas(course: Cluster, topic: str) -> dict[int, list[int]]:
    """Partition -> replicas, as Kafka's ``kafka-topics --describe`` prints them."""
    shown = kafka_tool(course, "kafka-topics", "--describe", "--topic", topic)
    return {
        int(p): [int(r) for r in rs.split(",")]
        for p, rs in re.findall(r"Partition: (\d+)\tLeader: \S+\tReplicas: ([\d,]+)", shown)
    }


def throttles(course: Cluster) -> dict[int, set[str]]:
    """The replication throttles set on each broker, as Kafka's ``kafka-configs`` prints them."""
    found = {}
    for broker in IDS:
        shown = kafka_tool(
            course, "kafka-configs", "--entity-type", "brokers", "--entity-name", str(broker), "--describe"
        )
        found[broker] = set(re.findall(r"(\S+\.replication\.throttled\.rate)=", shown))
    return found


def reassign(course: Cluster, *args: str):
    return mrkafka("topic", "reassign", *args, "--bootstrap-server", course.bootstrap_servers)


def until_verified(course: Cluster, plan: Path, ours: bool = True) -> str:
    deadline = time.monotonic() + 120
    while True:
        if ours:
            done = reassign(course, "--verify", "--reassignment-json-file", str(plan))
            assert done.returncode == 0, done.stderr
            out = done.stdout
        else:
            out = kafka_tool(course, "kafka-reassign-partitions", "--verify", "--reassignment-json-file", str(plan))
        if "still in progress" not in out or time.monotonic() > deadline:
            return out
        time.sleep(1)


def make_topic(course: Cluster, name: str, partitions: int, tmp_path: Path, lines: int = 2000) -> None:
    b = ["--bootstrap-server", course.bootstrap_servers]
    assert (
        mrkafka("topic", "create", name, "--partitions", str(partitions), "--replication-factor", "1", *b).returncode
        == 0
    )
    (tmp_path / "in.txt").write_text("".join(f"line {i} of {name}\n" for i in range(lines)))
    assert mrkafka("produce", "--topic", name, "--input", str(tmp_path / "in.txt"), *b).returncode == 0


def test_the_courses_file_moves_every_partition_with_a_throttle_that_verify_removes(
    course: Cluster, topic_name: str, tmp_path: Path
) -> None:
    make_topic(course, topic_name, 3, tmp_path)
    moves = {0: [10, 20, 30], 1: [20, 30, 10], 2: [30, 10, 20]}
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "version": 1,
                "partitions": [{"topic": topic_name, "partition": p, "replicas": r} for p, r in moves.items()],
            }
        )
    )
    started = reassign(course, "--execute", "--reassignment-json-file", str(plan), "--throttle", "50000000")
    assert started.returncode == 0, started.stderr
    assert "The inter-broker throttle limit was set to 50000000 B/s" in started.stdout
    set_now = throttles(course)
    assert all(
        {"leader.replication.throttled.rate", "follower.replication.throttled.rate"} <= t for t in set_now.values()
    )
    verified = until_verified(course, plan)
    assert verified.count("is completed") == 3 and "Clearing broker-level throttles" in verified
    assert throttles(course) == {b: set() for b in IDS}
    assert replicas(course, topic_name) == moves


def test_generate_and_kafkas_tool_accept_each_others_files(course: Cluster, topic_name: str, tmp_path: Path) -> None:
    make_topic(course, topic_name, 6, tmp_path)
    (tmp_path / "move.json").write_text(json.dumps({"topics": [{"topic": topic_name}], "version": 1}))
    ours = reassign(
        course, "--generate", "--topics-to-move-json-file", str(tmp_path / "move.json"), "--broker-list", "20,30"
    )
    assert ours.returncode == 0, ours.stderr
    unknown = reassign(
        course, "--generate", "--topics-to-move-json-file", str(tmp_path / "move.json"), "--broker-list", "20,99"
    )
    assert unknown.returncode == 2 and unknown.stderr == (
        "mrkafka: error: --broker-list: broker 99 is not in the cluster (its brokers: 10,20,30)\n"
    )
    current, proposed = (json.loads(line) for line in ours.stdout.splitlines() if line.startswith("{"))
    assert {p["partition"]: p["replicas"] for p in current["partitions"]} == replicas(course, topic_name)
    placed = {p["partition"]: p["replicas"] for p in proposed["partitions"]}
    logs = kafka_tool(course, "kafka-log-dirs", "--describe", "--topic-list", topic_name).splitlines()[-1]
    size = {
        int(replica["partition"].rpartition("-")[2]): replica["size"]
        for broker in json.loads(logs)["brokers"]
        for log_dir in broker["logDirs"]
        for replica in log_dir["partitions"]
    }
    held = {b: sum(size[p] for p, r in placed.items() if b in r) for b in (20, 30)}
    assert abs(held[20] - held[30]) <= max(size.values()), (held, size)  # bytes balanced, largest first
    (tmp_path / "ours.json").write_text(json.dumps(proposed))
    kafka_tool(
        course, "kafka-reassign-partitions", "--execute", "--reassignment-json-file", str(tmp_path / "ours.json")
    )
    assert "is completed" in until_verified(course, tmp_path / "ours.json", ours=False)
    assert replicas(course, topic_name) == placed

    theirs = kafka_tool(
        course,
        "kafka-reassign-partitions",
        "--generate",
        "--topics-to-move-json-file",
        str(tmp_path / "move.json"),
        "--broker-list",
        "10",
    )
    (tmp_path / "theirs.json").write_text(theirs.strip().splitlines()[-1])
    started = reassign(course, "--execute", "--reassignment-json-file", str(tmp_path / "theirs.json"))
    assert started.returncode == 0, started.stderr
    assert "is completed" in until_verified(course, tmp_path / "theirs.json")
    assert replicas(course, topic_name) == {p: [10] for p in range(6)}


def test_a_wrong_entry_is_one_line_and_changes_nothing(course: Cluster, topic_name: str, tmp_path: Path) -> None:
    make_topic(course, topic_name, 3, tmp_path, lines=200_000)
    before = replicas(course, topic_name)
    plan = tmp_path / "plan.json"

    def refused(partitions: object, message: str, now: dict[int, list[int]] = before) -> None:
        plan.write_text(
            partitions if isinstance(partitions, str) else json.dumps({"version": 1, "partitions": partitions})
        )
        done = reassign(course, "--execute", "--reassignment-json-file", str(plan))
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
        assert replicas(course, topic_name) == now

    ok = {"topic": topic_name, "partition": 0, "replicas": [10, 20]}
    refused([ok, {"topic": topic_name, "partition": 1, "replicas": [10, 40]}], f"{topic_name}-1: broker 40 is not in")
    refused([ok, {"topic": "no-such-topic", "partition": 0, "replicas": [10]}], "topic no-such-topic does not exist")
    refused([ok, {"topic": topic_name, "partition": 3, "replicas": [10]}], "has 3 partition(s), 0 to 2")
    refused([ok, {"topic": topic_name, "partition": 1, "replicas": [20, 20]}], "name broker 20 twice")
    refused('{"version": 1, "partitions": [{"topic": ', "is not JSON")

    # a partition being moved already: a move held back by a throttle of 1 byte a second
    slow = [{"topic": topic_name, "partition": 0, "replicas": [*before[0], next(b for b in IDS if b not in before[0])]}]
    (tmp_path / "slow.json").write_text(json.dumps({"version": 1, "partitions": slow}))
    started = reassign(course, "--execute", "--reassignment-json-file", str(tmp_path / "slow.json"), "--throttle", "1")
    assert started.returncode == 0, started.stderr
    listed = reassign(course, "--list")
    assert f"{topic_name}-0: replicas: " in listed.stdout, listed.stderr
    moving = replicas(course, topic_name)  # partition 0's replicas with the one being added
    assert moving[0] == slow[0]["replicas"]
    refused([ok], f"{topic_name}-0 is being reassigned already", moving)
    cancelled = reassign(course, "--cancel", "--reassignment-json-file", str(tmp_path / "slow.json"))
    assert (
        cancelled.returncode == 0
        and f"Successfully cancelled partition reassignment for: {topic_name}-0" in cancelled.stdout
    ), cancelled.stdout
    assert replicas(course, topic_name) == before
    assert throttles(course) == {b: set() for b in IDS}
    assert admin.describe_topic(course.bootstrap_servers, topic_name).partitions[0].replicas == before[0]
