"""``mrkafka kafka tool``: the Java command a course's line becomes."""

from __future__ import annotations

import pytest

from mrkafka.devtools import tools
from mrkafka.errors import BadInputError

B = "127.0.0.1:9092"


@pytest.fixture(autouse=True)
def _no_java(monkeypatch: pytest.MonkeyPatch) -> None:
    """The class and its arguments, without the JVM's part of the line."""
    monkeypatch.setattr(tools, "tool_command", lambda main_class, *args: [main_class, *args])


def test_a_tool_is_named_as_its_script_with_or_without_kafka_and_sh() -> None:
    for name in ("kafka-topics.sh", "kafka-topics", "topics"):
        assert tools.tool_argv(name, ["--list"], B, None) == [
            "org.apache.kafka.tools.TopicCommand",
            "--bootstrap-server",
            B,
            "--list",
        ]
    with pytest.raises(BadInputError, match="no Kafka tool 'kafka-zookeeper-shell'; the tools are: kafka-acls, "):
        tools.tool_argv("kafka-zookeeper-shell", [], B, None)


def test_the_cluster_is_filled_in_only_where_the_line_gives_none(tmp_path) -> None:
    config = tmp_path / "admin.properties"
    argv = tools.tool_argv("kafka-configs", ["--describe", "--entity-type", "brokers"], B, config)
    assert argv[1:5] == ["--bootstrap-server", B, "--command-config", str(config)]  # before a subcommand
    theirs = ["--bootstrap-server=10.0.0.1:9092", "--list"]
    assert tools.tool_argv("kafka-topics", theirs, B, config) == ["org.apache.kafka.tools.TopicCommand", *theirs]
    own_settings = ["--topic", "t", "--producer.config", "p.properties"]
    assert tools.tool_argv("kafka-console-producer", own_settings, B, config)[1:] == [
        "--bootstrap-server",
        B,
        *own_settings,
    ]
    controller = ["--bootstrap-controller", "127.0.0.1:9192", "describe", "--status"]
    assert tools.tool_argv("kafka-metadata-quorum", controller, B, None)[1:] == controller
    for args in (["--help"], ["--version"]):
        assert tools.tool_argv("kafka-topics", args, B, config)[1:] == args
    segments = ["--files", "00000000000000000000.log"]
    assert tools.tool_argv("kafka-dump-log", segments, B, config)[1:] == segments


def test_zookeepers_options_are_one_line_giving_the_bootstrap_form() -> None:
    with pytest.raises(BadInputError) as refused:
        tools.tool_argv("kafka-topics", ["--zookeeper", "localhost:2181", "--list"], B, None)
    assert str(refused.value) == (
        f"kafka-topics has no --zookeeper (Kafka 4 runs without ZooKeeper): give --bootstrap-server {B} instead"
    )
    with pytest.raises(BadInputError, match="kafka-console-producer has no --broker-list: give --bootstrap-server"):
        tools.tool_argv("kafka-console-producer", ["--broker-list=localhost:9092", "--topic", "t"], B, None)
    moved = ["--generate", "--topics-to-move-json-file", "t.json", "--broker-list", "1,2,3"]
    assert tools.tool_argv("kafka-reassign-partitions", moved, B, None)[-5:] == moved  # broker ids there
