"""Kafka's own command-line tools, run from the fetched jars: ``mrkafka kafka tool NAME ARGS``.

Kafka's distribution runs each tool through a ``bin/kafka-NAME.sh`` script that names its Java
class; mrkafka fetches the jars, not the scripts, so ``TOOLS`` names the classes instead.
``tool_argv`` turns a user's line, as a Kafka course writes it, into the Java command: the
running cluster's ``--bootstrap-server`` and ``--command-config`` added when the line has none,
and ZooKeeper's options, which Kafka 4 no longer has, refused in one line that gives the form
that replaced them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from mrkafka.devtools.jars import ensure_jars, java_command
from mrkafka.errors import BadInputError

__all__ = ["TOOLS", "tool_argv", "tool_command"]

#: The tools of Kafka 4.3's ``bin/``, by script name (without ``.sh``), and their classes.
TOOLS = {
    "kafka-acls": "org.apache.kafka.tools.AclCommand",
    "kafka-broker-api-versions": "org.apache.kafka.tools.BrokerApiVersionsCommand",
    "kafka-cluster": "org.apache.kafka.tools.ClusterTool",
    "kafka-configs": "kafka.admin.ConfigCommand",
    "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-consumer-perf-test": "org.apache.kafka.tools.ConsumerPerformance",
    "kafka-delete-records": "org.apache.kafka.tools.DeleteRecordsCommand",
    "kafka-dump-log": "org.apache.kafka.tools.DumpLogSegments",
    "kafka-e2e-latency": "org.apache.kafka.tools.EndToEndLatency",
    "kafka-features": "org.apache.kafka.tools.FeatureCommand",
    "kafka-get-offsets": "org.apache.kafka.tools.GetOffsetShell",
    "kafka-groups": "org.apache.kafka.tools.GroupsCommand",
    "kafka-leader-election": "org.apache.kafka.tools.LeaderElectionCommand",
    "kafka-log-dirs": "org.apache.kafka.tools.LogDirsCommand",
    "kafka-metadata-quorum": "org.apache.kafka.tools.MetadataQuorumCommand",
    "kafka-producer-perf-test": "org.apache.kafka.tools.ProducerPerformance",
    "kafka-reassign-partitions": "org.apache.kafka.tools.reassign.ReassignPartitionsCommand",
    "kafka-streams-groups": "org.apache.kafka.tools.streams.StreamsGroupCommand",
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-transactions": "org.apache.kafka.tools.TransactionsCommand",
    "kafka-verifiable-producer": "org.apache.kafka.tools.VerifiableProducer",
}
#: Tools that connect to no cluster (``kafka-dump-log`` reads segment files), or not through
#: these options (``kafka-cluster``'s subcommands, ``kafka-e2e-latency``'s positional arguments).
_NO_CONNECTION = frozenset({"kafka-dump-log", "kafka-cluster", "kafka-e2e-latency"})
#: Options that say where to connect (Kafka 4.3 also keeps ``--bootstrap-controller``), and
#: those that name the client settings (the older names are kept as aliases by Kafka).
_CONNECT = ("--bootstrap-server", "--bootstrap-controller")
_SETTINGS = ("--command-config", "--producer.config", "--consumer.config", "--admin.config")
#: Options that Kafka 4 removed in favour of ``--bootstrap-server``, and why.
_REMOVED = {"--zookeeper": " (Kafka 4 runs without ZooKeeper)", "--broker-list": ""}
#: ``--broker-list`` still exists in these, meaning a list of broker ids.
_BROKER_IDS = frozenset({"kafka-reassign-partitions", "kafka-log-dirs"})


def tool_command(main_class: str, *args: str, heap: str = "256m") -> list[str]:
    """The Java command line of the tool ``main_class``, logging warnings and errors only, to
    stderr (the tools' own log4j defaults print every client's INFO lines)."""
    lib = ensure_jars()
    config = lib.parent / "tools-log4j2.properties"
    if not config.exists():
        _write_once(
            config,
            "status = warn\nappender.err.type = Console\nappender.err.name = STDERR\nappender.err.target = SYSTEM_ERR\n"
            "appender.err.layout.type = PatternLayout\nappender.err.layout.pattern = %p %m%n\n"
            "rootLogger.level = WARN\nrootLogger.appenderRef.err.ref = STDERR\n",
        )
    return [java_command(), f"-Xmx{heap}", f"-Dlog4j2.configurationFile={config}", "-cp", f"{lib}/*", main_class, *args]


def _write_once(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all: a tool started meanwhile reads the old or the new."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(text)
    partial.replace(path)


def tool_name(name: str) -> str:
    """``kafka-topics``, ``kafka-topics.sh`` and ``topics`` all name ``kafka-topics``."""
    bare = name.removesuffix(".sh")
    full = bare if bare.startswith("kafka-") else f"kafka-{bare}"
    if full not in TOOLS:
        raise BadInputError(f"no Kafka tool {name!r}; the tools are: {', '.join(sorted(TOOLS))}")
    return full


def tool_argv(name: str, args: Sequence[str], bootstrap: str, command_config: Path | None) -> list[str]:
    """The command line that runs Kafka's tool ``name`` with ``args``, connected to ``bootstrap``
    with the settings in ``command_config`` unless ``args`` say where and how to connect."""
    tool = tool_name(name)
    for arg in args:
        option = arg.split("=", 1)[0]
        if option in _REMOVED and not (option == "--broker-list" and tool in _BROKER_IDS):
            raise BadInputError(
                f"{tool} has no {option}{_REMOVED[option]}: give --bootstrap-server {bootstrap} instead"
            )
    given = _options(args)
    extra: list[str] = []
    if needs_connection(tool, args):
        extra += ["--bootstrap-server", bootstrap]
        if command_config is not None and not given & set(_SETTINGS):
            extra += ["--command-config", str(command_config)]
    return tool_command(TOOLS[tool], *extra, *args)  # before a subcommand, which argparse's tools need


def needs_connection(name: str, args: Sequence[str]) -> bool:
    """Whether Kafka's tool ``name`` with ``args`` is to be told where the cluster is."""
    given = _options(args)
    return (
        tool_name(name) not in _NO_CONNECTION
        and not given & set(_CONNECT)
        and not given & {"--help", "-h", "--version"}
    )


def _options(args: Sequence[str]) -> set[str]:
    return {arg.split("=", 1)[0] for arg in args}
