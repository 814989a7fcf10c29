"""Topic administration and cluster checks over aiokafka's admin client.

Every call takes the bootstrap servers (the command line's ``--bootstrap-servers``) and fails
within seconds, with ``KafkaUnavailableError``, when no broker answers there; a failure that
may pass (a leader moving, a request timing out) is a ``TransientKafkaError``, which callers
may retry.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.errors import for_code
from aiokafka.protocol.admin import DeleteGroupsRequest
from aiokafka.protocol.metadata import MetadataRequest

from mrkafka.errors import KafkaError, TopicError, TransientKafkaError
from mrkafka.kafka.client import CONNECT_TIMEOUT, RETRIABLE, classify, describe, started

__all__ = [
    "PartitionInfo",
    "TopicInfo",
    "admin_client",
    "alter_configs",
    "alter_partitions",
    "broker_ids",
    "committed_offsets",
    "create_topic",
    "delete_topic",
    "describe_topic",
    "delete_groups",
    "ensure_topic",
    "group_members",
    "list_groups",
    "list_topics",
    "topic_offsets",
]

_DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs' ConfigSource for a config set on the topic itself


@dataclass(frozen=True, order=True)
class PartitionInfo:
    partition: int
    leader: int
    replicas: list[int]
    isr: list[int]


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: list[PartitionInfo]
    configs: dict[str, str] = field(default_factory=dict)


@asynccontextmanager
async def admin_client(bootstrap: str, timeout: float = CONNECT_TIMEOUT) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    async with started(client, bootstrap, timeout):
        yield client


def _check(errors: list[tuple], action: str) -> None:
    for entry in errors:
        name, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 and entry[2] else ""
        if code:
            error = for_code(code)
            text = f"{action} {name}: {error.__name__}" + (f": {message}" if message else "")
            raise (TopicError if error.__name__.startswith(("Topic", "UnknownTopic")) else KafkaError)(text)


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except (AIOKafkaError, asyncio.TimeoutError) as exc:
        error = TransientKafkaError if classify(exc) == RETRIABLE else KafkaError
        raise error(describe(exc)) from exc


async def _broker_ids(bootstrap: str, timeout: float) -> set[int]:
    async with admin_client(bootstrap, timeout) as client:
        cluster = await client.describe_cluster()
    return {broker["node_id"] for broker in cluster["brokers"]}


def broker_ids(bootstrap: str, timeout: float = CONNECT_TIMEOUT) -> set[int]:
    """The ids of the brokers the cluster reports."""
    return _run(_broker_ids(bootstrap, timeout))


async def _await_metadata(client: AIOKafkaAdminClient, name: str, partitions: int) -> None:
    """Wait until every broker describes ``partitions`` partitions of ``name``, each with a leader.

    The controller answers a create or alter before the brokers' metadata has the change, and the
    next client may ask any broker."""
    nodes = {broker["node_id"] for broker in (await client.describe_cluster())["brokers"]}
    request = MetadataRequest([name], allow_auto_topic_creation=False)
    deadline = asyncio.get_running_loop().time() + CONNECT_TIMEOUT
    while True:
        for node in sorted(nodes):
            # aiokafka's describe_topics asks a random node; its _send_request takes the node to ask.
            (topic,) = (await client._send_request(request, node)).to_object()["topics"]
            described = topic["partitions"]
            if not topic["error_code"] and len(described) == partitions and all(p["leader"] >= 0 for p in described):
                nodes.discard(node)
        if not nodes:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TransientKafkaError(f"topic {name} was changed; brokers {sorted(nodes)} do not show it yet")
        await asyncio.sleep(0.05)


async def _create(bootstrap: str, topic: NewTopic) -> None:
    async with admin_client(bootstrap) as client:
        response = await client.create_topics([topic])
        _check(response.topic_errors, "cannot create topic")
        await _await_metadata(client, topic.name, topic.num_partitions)


def create_topic(
    bootstrap: str,
    name: str,
    partitions: int = 1,
    replication_factor: int = 1,
    configs: Mapping[str, str] | None = None,
) -> None:
    topic = NewTopic(name, partitions, replication_factor, topic_configs=dict(configs or {}))
    _run(_create(bootstrap, topic))


async def _list(bootstrap: str) -> list[str]:
    async with admin_client(bootstrap) as client:
        return sorted(await client.list_topics())


def list_topics(bootstrap: str, internal: bool = False) -> list[str]:
    return [t for t in _run(_list(bootstrap)) if internal or not t.startswith("__")]


async def _describe(bootstrap: str, name: str) -> TopicInfo:
    async with admin_client(bootstrap) as client:
        (topic,) = await client.describe_topics([name])
        if topic["error_code"]:
            raise TopicError(f"topic {name} does not exist" if topic["error_code"] == 3 else
                             f"cannot describe topic {name}: {for_code(topic['error_code']).__name__}")  # fmt: skip
        (response,) = await client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
    partitions = sorted(
        PartitionInfo(p["partition"], p["leader"], list(p["replicas"]), list(p["isr"])) for p in topic["partitions"]
    )
    # Entries are (name, value, read_only, source, ...); like kafka-topics, show what was set on the topic.
    configs = {
        entry[0]: entry[1]
        for resource in response.resources
        for entry in resource[4]
        if entry[3] == _DYNAMIC_TOPIC_CONFIG
    }
    return TopicInfo(name, partitions, configs)


def describe_topic(bootstrap: str, name: str) -> TopicInfo:
    """Partitions (leader, replicas, in-sync replicas) and the configs set on the topic."""
    return _run(_describe(bootstrap, name))


async def _alter(bootstrap: str, name: str, count: int) -> None:
    async with admin_client(bootstrap) as client:
        response = await client.create_partitions({name: NewPartitions(count)})
        _check(response.topic_errors, "cannot alter topic")
        await _await_metadata(client, name, count)


def alter_partitions(bootstrap: str, name: str, count: int) -> None:
    """Raise the partition count of a topic (Kafka cannot lower it)."""
    _run(_alter(bootstrap, name, count))


async def _delete(bootstrap: str, name: str) -> None:
    async with admin_client(bootstrap) as client:
        response = await client.delete_topics([name])
    _check(response.topic_error_codes, "cannot delete topic")


def delete_topic(bootstrap: str, name: str) -> None:
    _run(_delete(bootstrap, name))


async def _offsets(
    bootstrap: str, topic: str, partitions: list[int], isolation_level: str
) -> tuple[dict[int, int], dict[int, int]]:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level=isolation_level)
    async with started(consumer, bootstrap):
        tps = [TopicPartition(topic, p) for p in partitions]
        begin = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
    return {tp.partition: o for tp, o in begin.items()}, {tp.partition: o for tp, o in end.items()}


def topic_offsets(
    bootstrap: str, topic: str, isolation_level: str = "read_uncommitted"
) -> tuple[dict[int, int], dict[int, int]]:
    """The beginning and end offset of every partition of ``topic``; under ``read_committed``
    the end is the last stable offset (no open transaction's records)."""
    partitions = [p.partition for p in describe_topic(bootstrap, topic).partitions]
    return _run(_offsets(bootstrap, topic, partitions, isolation_level))


async def _committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    async with admin_client(bootstrap) as client:
        try:
            offsets = await client.list_consumer_group_offsets(group)
        except AIOKafkaError as exc:
            if not exc.retriable:  # e.g. the coordinator is still loading: nothing committed yet
                raise
            return {}
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The offsets consumer group ``group`` committed for the partitions of ``topic``."""
    return _run(_committed(bootstrap, group, topic))


async def _list_groups(bootstrap: str) -> list[str]:
    async with admin_client(bootstrap) as client:
        return sorted(group for group, _ in await client.list_consumer_groups())


def list_groups(bootstrap: str) -> list[str]:
    """The consumer groups the cluster knows."""
    return _run(_list_groups(bootstrap))


async def _group_members(bootstrap: str, groups: list[str]) -> int:
    members = 0
    async with admin_client(bootstrap) as client:
        # One group per request: aiokafka 0.14 reads a DescribeGroups v3 answer with the v2
        # schema (DescribeGroupsRequest_v3.RESPONSE_TYPE), which lacks each group's trailing
        # authorized_operations; with two groups in one answer the second is misread.
        for group in groups:
            for response in await client.describe_consumer_groups([group]):
                # (error, group, state, protocol type, protocol, members) per group
                members += sum(len(described[5]) for described in response.groups)
    return members


def group_members(bootstrap: str, groups: list[str]) -> int:
    """How many consumers the consumer groups ``groups`` have (a missing group has none)."""
    return _run(_group_members(bootstrap, groups))


_GROUP_ID_NOT_FOUND = 69


async def _delete_groups(bootstrap: str, groups: list[str]) -> list[str]:
    deleted = []
    async with admin_client(bootstrap) as client:
        for group in groups:
            coordinator = await client.find_coordinator(group)
            # aiokafka's admin client has no delete_consumer_groups; its _send_request sends any request.
            response = await client._send_request(DeleteGroupsRequest([group]), coordinator)
            for name, code in response.results:
                if code and code != _GROUP_ID_NOT_FOUND:
                    raise KafkaError(f"cannot delete group {name}: {for_code(code).__name__}")
                if not code:
                    deleted.append(name)
    return deleted


def delete_groups(bootstrap: str, groups: list[str]) -> list[str]:
    """Delete consumer groups and their committed offsets (a group with members is refused by
    the broker); return those that existed."""
    return _run(_delete_groups(bootstrap, groups))


def ensure_topic(
    bootstrap: str,
    name: str,
    partitions: int,
    configs: Mapping[str, str] | None = None,
    replication_factor: int = 1,
    exact: bool = True,
    enforce_configs: bool = False,
    mismatch_hint: str = "delete it or run with --reducers {partitions}",
) -> int:
    """Create ``name`` unless it exists; with ``exact``, an existing one must have ``partitions``;
    with ``enforce_configs``, an existing one gets ``configs`` (for topics mrkafka owns).

    ``mismatch_hint`` ends the error of a wrong partition count, with the count it has.
    Returns the topic's partition count (asking again right after creating it could meet a
    broker whose metadata does not have the topic yet)."""
    try:
        info = describe_topic(bootstrap, name)
    except TopicError:
        try:
            create_topic(bootstrap, name, partitions, replication_factor, configs)
            return partitions
        except TopicError:  # created meanwhile by another run
            info = describe_topic(bootstrap, name)
    if exact and len(info.partitions) != partitions:
        raise TopicError(
            f"topic {name} has {len(info.partitions)} partitions, but this run needs {partitions}; "
            + mismatch_hint.format(partitions=len(info.partitions))
        )
    wanted = dict(configs or {})
    if enforce_configs and any(info.configs.get(k) != v for k, v in wanted.items()):
        alter_configs(bootstrap, name, {**info.configs, **wanted})
    return len(info.partitions)


async def _alter_configs(bootstrap: str, name: str, configs: dict[str, str]) -> None:
    async with admin_client(bootstrap) as client:
        responses = await client.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, configs=configs)])
    for response in responses:
        _check([(name, code, message) for code, message, *_ in response.resources], "cannot alter topic")


def alter_configs(bootstrap: str, name: str, configs: Mapping[str, str]) -> None:
    """Set the configs of topic ``name`` to ``configs`` (the ones set on it before are replaced)."""
    _run(_alter_configs(bootstrap, name, dict(configs)))
