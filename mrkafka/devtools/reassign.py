"""``mrkafka topic reassign``: moving partitions between brokers, with the options and JSON
files of Kafka's ``kafka-reassign-partitions``.

Kafka's own tool (``ReassignPartitionsCommand``, run from the fetched jars) executes, verifies,
cancels and lists reassignments. Neither librdkafka nor confluent-kafka has KIP-455's
AlterPartitionReassignments and ListPartitionReassignments, and the tool is the reference for
what they mean around them: the replication throttles ``--execute --throttle`` sets and
``--verify`` removes, ``--additional``, a cancel's rollback. mrkafka adds what the tool lacks:

- every entry of a reassignment file is checked against the cluster before anything changes
  (``check_moves``): an entry with a topic or partition that does not exist, a broker that does
  not, a broker named twice, or a partition already being moved is one line naming it, exit 2,
  where the tool prints a stack trace, or moves the other partitions;
- ``--generate`` (``propose``) balances the partitions' bytes (from DescribeLogDirs, through
  Kafka's ``kafka-log-dirs``) and their leaders across the brokers, keeping a partition's
  replicas on distinct racks where the brokers have racks; Kafka's is round-robin.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mrkafka.devtools.tools import TOOLS, tool_command
from mrkafka.errors import BadInputError, KafkaError, TopicError
from mrkafka.kafka.admin import Admin

__all__ = [
    "Move",
    "check_moves",
    "checked_moves",
    "generate",
    "in_progress",
    "partition_sizes",
    "propose",
    "broker_list",
    "read_moves",
    "read_topics",
    "run",
]

TopicPartition = tuple[str, int]


@dataclass(frozen=True)
class Move:
    """One entry of a reassignment file: partition ``partition`` of ``topic`` to ``replicas``
    (the first the preferred leader), each in the log dir of the same index (``any``: the
    broker's choice)."""

    topic: str
    partition: int
    replicas: tuple[int, ...]
    log_dirs: tuple[str, ...] | None = None

    @property
    def name(self) -> str:
        return f"{self.topic}-{self.partition}"


def _load(path: str | Path, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except OSError as exc:
        raise BadInputError(f"cannot read {what} {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{path} is not JSON: {exc}") from None


def read_topics(path: str | Path) -> list[str]:
    """The topics of a topics-to-move file: ``{"topics": [{"topic": "t"}, ...], "version": 1}``."""
    document = _load(path, "the topics-to-move file")
    topics = document.get("topics") if isinstance(document, dict) else None
    if not isinstance(topics, list) or not topics:
        raise BadInputError(f'{path}: expected {{"topics": [{{"topic": NAME}}, ...], "version": 1}}')
    names = []
    for i, entry in enumerate(topics):
        if not isinstance(entry, dict) or not isinstance(entry.get("topic"), str):
            raise BadInputError(f'{path}: topics[{i}] is {json.dumps(entry)}, not {{"topic": NAME}}')
        names.append(entry["topic"])
    return names


def read_moves(path: str | Path) -> list[Move]:
    """The entries of a reassignment file, each checked for form (not against the cluster)."""
    document = _load(path, "the reassignment file")
    entries = document.get("partitions") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise BadInputError(f'{path}: expected {{"version": 1, "partitions": [...]}} with at least one partition')
    moves: list[Move] = []
    for i, entry in enumerate(entries):
        where = f"{path}: partitions[{i}]"
        if not isinstance(entry, dict):
            raise BadInputError(f"{where} is {json.dumps(entry)}, not an object")
        topic, partition, replicas = entry.get("topic"), entry.get("partition"), entry.get("replicas")
        log_dirs = entry.get("log_dirs")
        if not isinstance(topic, str) or not topic:
            raise BadInputError(f'{where} has no "topic"')
        if not isinstance(partition, int) or isinstance(partition, bool) or partition < 0:
            raise BadInputError(f'{where} ({topic}): "partition" must be a number 0 or more')
        where = f"{path}: {topic}-{partition}"
        if not isinstance(replicas, list) or not replicas or not all(_is_id(r) for r in replicas):
            raise BadInputError(f'{where}: "replicas" must be a non-empty list of broker ids')
        if twice := sorted({r for r in replicas if replicas.count(r) > 1}):
            raise BadInputError(f"{where}: replicas {replicas} name broker {twice[0]} twice")
        if log_dirs is not None and (
            not isinstance(log_dirs, list)
            or len(log_dirs) != len(replicas)
            or not all(isinstance(d, str) for d in log_dirs)
        ):
            raise BadInputError(f'{where}: "log_dirs" must be a list of {len(replicas)} paths (or "any")')
        move = Move(topic, partition, tuple(replicas), None if log_dirs is None else tuple(log_dirs))
        if any(m.name == move.name for m in moves):
            raise BadInputError(f"{where} is in the file twice")
        moves.append(move)
    return moves


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_moves(
    moves: Iterable[Move],
    partitions: Mapping[str, int | None],
    brokers: Iterable[int],
    moving: Iterable[str] = (),
) -> None:
    """Each move against the cluster: ``partitions`` gives each topic's partition count (None:
    no such topic), ``brokers`` the brokers' ids, ``moving`` the partitions being moved now."""
    known, busy = set(brokers), set(moving)
    for move in moves:
        count = partitions.get(move.topic)
        if count is None:
            raise BadInputError(f"{move.name}: topic {move.topic} does not exist")
        if move.partition >= count:
            raise BadInputError(f"{move.name}: topic {move.topic} has {count} partition(s), 0 to {count - 1}")
        if unknown := [r for r in move.replicas if r not in known]:
            raise BadInputError(
                f"{move.name}: broker {unknown[0]} is not in the cluster (its brokers: {_ids(sorted(known))})"
            )
        if move.name in busy:
            raise BadInputError(
                f"{move.name} is being reassigned already: wait for it (--verify), or --cancel it first"
            )


def _ids(ids: Iterable[int]) -> str:
    return ",".join(map(str, ids))


def propose(
    current: Mapping[TopicPartition, Sequence[int]],
    sizes: Mapping[TopicPartition, int],
    brokers: Sequence[int],
    racks: Mapping[int, str | None],
) -> dict[TopicPartition, list[int]]:
    """New replicas for each partition of ``current``, on ``brokers``, keeping each partition's
    replication factor.

    Partitions are placed largest first (``sizes``, in bytes), each replica on the broker that
    holds the fewest bytes so far (then the fewest replicas; then one that has the partition now,
    so that less data moves), on a rack none of the partition's replicas has yet while there is
    one (``racks``: empty when the brokers have none, or rack awareness is off). The leader is the
    chosen replica that leads the fewest bytes so far. With sizes all 0 this spreads replicas and
    leaders evenly by count."""
    if not brokers:
        raise BadInputError("--broker-list names no broker")
    replicas_held = {b: 0 for b in brokers}
    bytes_held = {b: 0 for b in brokers}
    bytes_led = {b: 0 for b in brokers}
    led = {b: 0 for b in brokers}
    proposed: dict[TopicPartition, list[int]] = {}
    for tp in sorted(current, key=lambda tp: (-sizes.get(tp, 0), tp)):
        factor, size = len(current[tp]), sizes.get(tp, 0)
        if factor > len(brokers):
            raise BadInputError(
                f"{tp[0]}-{tp[1]} has {factor} replicas, but --broker-list names {len(brokers)} broker(s)"
            )
        chosen: list[int] = []
        for _ in range(factor):
            free = [b for b in brokers if b not in chosen]
            apart = [b for b in free if racks.get(b) is None or racks[b] not in {racks.get(c) for c in chosen}]
            best = min(apart or free, key=lambda b: (bytes_held[b], replicas_held[b], b not in current[tp], b))
            chosen.append(best)
            bytes_held[best] += size
            replicas_held[best] += 1
        leader = min(chosen, key=lambda b: (bytes_led[b], led[b], chosen.index(b)))
        bytes_led[leader] += size
        led[leader] += 1
        proposed[tp] = [leader, *(b for b in chosen if b != leader)]
    return proposed


def assignment_json(assignment: Mapping[TopicPartition, Sequence[int]]) -> str:
    """An assignment in Kafka's reassignment file format, one line, as Kafka's tool prints it."""
    partitions = [
        {"topic": t, "partition": p, "replicas": list(r), "log_dirs": ["any"] * len(r)}
        for (t, p), r in sorted(assignment.items())
    ]
    return json.dumps({"version": 1, "partitions": partitions}, separators=(",", ":"))


def _tool(name: str, bootstrap: str, command_config: str | None, *args: str) -> list[str]:
    settings = ["--command-config", command_config] if command_config else []
    return tool_command(TOOLS[name], "--bootstrap-server", bootstrap, *settings, *args)


def run(args: Sequence[str], bootstrap: str, command_config: str | None, capture: bool = False) -> tuple[int, str]:
    """Kafka's ``kafka-reassign-partitions`` with ``args``: its exit code, and its output if
    ``capture`` (else it goes to the user's terminal)."""
    command = _tool("kafka-reassign-partitions", bootstrap, command_config, *args)
    done = subprocess.run(command, capture_output=capture, text=True, check=False)
    return done.returncode, done.stdout if capture else ""


def in_progress(bootstrap: str, command_config: str | None) -> set[str]:
    """The partitions (``topic-N``) being reassigned now, as Kafka's ``--list`` says."""
    code, out = run(["--list"], bootstrap, command_config, capture=True)
    if code != 0:
        raise KafkaError(f"cannot list the reassignments in progress: {out.strip() or f'exit {code}'}")
    return set(re.findall(r"^(\S+-\d+): replicas: ", out, re.M))


def partition_sizes(bootstrap: str, command_config: str | None, topics: Sequence[str]) -> dict[TopicPartition, int]:
    """Each partition's size in bytes (its largest replica's), from Kafka's ``kafka-log-dirs``."""
    command = _tool("kafka-log-dirs", bootstrap, command_config, "--describe", "--topic-list", ",".join(topics))
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    described = next((line for line in done.stdout.splitlines() if line.startswith("{")), None)
    if done.returncode != 0 or described is None:
        raise KafkaError(f"cannot read the partitions' sizes: {(done.stderr or done.stdout).strip()[-300:]}")
    sizes: dict[TopicPartition, int] = {}
    for broker in json.loads(described)["brokers"]:
        for log_dir in broker["logDirs"]:
            for replica in log_dir["partitions"]:
                topic, _, partition = replica["partition"].rpartition("-")
                tp = (topic, int(partition))
                sizes[tp] = max(sizes.get(tp, 0), replica["size"])
    return sizes


def broker_list(text: str) -> list[int]:
    """``--broker-list 10,20,30``: the ids, each once."""
    try:
        ids = [int(part) for part in text.split(",")]
    except ValueError:
        raise BadInputError(f"--broker-list {text!r} is not a comma-separated list of broker ids") from None
    if len(set(ids)) != len(ids):
        raise BadInputError(f"--broker-list {text} names a broker twice")
    return ids


def generate(
    kafka: Admin, command_config: str | None, topics_file: str, broker_list: Sequence[int], racks: bool
) -> str:
    """``--generate``: the current assignment of the topics in ``topics_file`` and a proposed one
    on ``broker_list`` (``propose``; rack-aware if ``racks``), printed as Kafka's tool prints them."""
    topics = read_topics(topics_file)
    brokers = kafka.brokers()
    if unknown := [b for b in broker_list if b not in brokers]:
        raise BadInputError(
            f"--broker-list: broker {unknown[0]} is not in the cluster (its brokers: {_ids(sorted(brokers))})"
        )
    current: dict[TopicPartition, list[int]] = {}
    for topic in topics:
        try:
            current.update({(topic, p.partition): p.replicas for p in kafka.describe_topic(topic).partitions})
        except TopicError:
            raise BadInputError(f"{topics_file}: topic {topic} does not exist") from None
    rack_of = {b: brokers[b] for b in broker_list} if racks else {}
    if any(rack_of.values()) and not all(rack_of.values()):
        bare = _ids(b for b, rack in rack_of.items() if rack is None)
        raise BadInputError(f"brokers {bare} have no rack and the others do: give --disable-rack-aware to ignore racks")
    proposed = propose(current, partition_sizes(kafka.bootstrap, command_config, topics), broker_list, rack_of)
    return (
        f"Current partition replica assignment\n{assignment_json(current)}\n\n"
        f"Proposed partition reassignment configuration\n{assignment_json(proposed)}"
    )


def checked_moves(kafka: Admin, command_config: str | None, path: str, busy_ok: bool) -> list[Move]:
    """The moves of reassignment file ``path``, each checked against the cluster (``check_moves``);
    a partition being moved already is refused unless ``busy_ok``."""
    moves = read_moves(path)
    counts: dict[str, int | None] = {}
    for topic in sorted({m.topic for m in moves}):
        try:
            counts[topic] = len(kafka.describe_topic(topic).partitions)
        except TopicError:
            counts[topic] = None
    check_moves(moves, counts, kafka.brokers(), () if busy_ok else in_progress(kafka.bootstrap, command_config))
    return moves
