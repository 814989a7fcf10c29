"""Topic, group and offset administration over aiokafka's admin client.

``Admin(bootstrap)`` holds one admin connection (and, for offsets, one consumer per isolation
level) for as many calls as its owner makes, on one event loop of its own: a stream run's
driver keeps one for the whole run. The module's functions of the same names make one call
each on a connection of their own, for commands that make one or two.

A call fails within seconds, with ``KafkaUnavailableError``, when no broker answers; a failure
that may pass (a leader moving, a request timing out) is a ``TransientKafkaError``, which
callers may retry (the connection is made again on the next call).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.errors import for_code
from aiokafka.protocol.admin import DeleteGroupsRequest
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.structs import TopicPartition

from mrkafka.errors import AuthorizationError, KafkaError, TopicError, TransientKafkaError
from mrkafka.kafka.client import CONNECT_TIMEOUT, RETRIABLE, classify, close_quietly, denied, describe, start
from mrkafka.kafka.security import PLAINTEXT, ClientSecurity

__all__ = [
    "Admin",
    "PartitionInfo",
    "TopicInfo",
    "alter_configs",
    "alter_partitions",
    "broker_ids",
    "committed_offsets",
    "create_topic",
    "delete_groups",
    "delete_topic",
    "describe_topic",
    "ensure_topic",
    "group_members",
    "list_groups",
    "list_topics",
    "topic_offsets",
]

_DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs' ConfigSource for a config set on the topic itself
_GROUP_ID_NOT_FOUND = 69
_TOPIC_AUTHORIZATION_FAILED, _CLUSTER_AUTHORIZATION_FAILED = 29, 31
T = TypeVar("T")


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


def _check(errors: list[tuple], action: str, operation: str) -> None:
    for entry in errors:
        name, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 and entry[2] else ""
        if code == _TOPIC_AUTHORIZATION_FAILED:
            raise AuthorizationError.denied(operation, "topic", name)
        if code == _CLUSTER_AUTHORIZATION_FAILED:
            raise AuthorizationError.denied(operation, "cluster")
        if code:
            error = for_code(code)
            text = f"{action} {name}: {error.__name__}" + (f": {message}" if message else "")
            raise (TopicError if error.__name__.startswith(("Topic", "UnknownTopic")) else KafkaError)(text)


class Admin:
    """One admin connection to the cluster at ``bootstrap``, for many calls (see the module docstring).

    Use as a context manager, or ``close()`` it. Not for use from two threads at once."""

    def __init__(self, bootstrap: str, timeout: float = CONNECT_TIMEOUT, security: ClientSecurity = PLAINTEXT) -> None:
        self.bootstrap, self.timeout, self.security = bootstrap, timeout, security
        self._loop = asyncio.new_event_loop()
        self._client: AIOKafkaAdminClient | None = None
        self._consumers: dict[str, AIOKafkaConsumer] = {}

    def __enter__(self) -> Admin:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._loop.run_until_complete(self._disconnect())
        self._loop.close()

    async def _disconnect(self) -> None:
        clients = [self._client, *self._consumers.values()]
        self._client, self._consumers = None, {}
        for client in clients:
            if client is not None:
                await close_quietly(client)

    async def _admin(self) -> AIOKafkaAdminClient:
        if self._client is None:
            client = AIOKafkaAdminClient(
                bootstrap_servers=self.bootstrap,
                request_timeout_ms=int(self.timeout * 1000),
                **self.security.aiokafka_options(),
            )
            await start(client, self.bootstrap, self.timeout, self.security)
            self._client = client
        return self._client

    async def _consumer(self, isolation_level: str) -> AIOKafkaConsumer:
        if isolation_level not in self._consumers:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                enable_auto_commit=False,
                isolation_level=isolation_level,
                **self.security.aiokafka_options(),
            )
            await start(consumer, self.bootstrap, self.timeout, self.security)
            self._consumers[isolation_level] = consumer
        return self._consumers[isolation_level]

    def _run(self, coro: Any) -> Any:
        """Run one call on this admin's loop; after a failure the next call connects again."""
        try:
            return self._loop.run_until_complete(coro)
        except (AIOKafkaError, asyncio.TimeoutError) as exc:
            self._loop.run_until_complete(self._disconnect())
            if (not_allowed := denied(exc, "DESCRIBE")) is not None:
                raise not_allowed from exc
            error = TransientKafkaError if classify(exc) == RETRIABLE else KafkaError
            raise error(describe(exc)) from exc
        except TransientKafkaError:
            self._loop.run_until_complete(self._disconnect())
            raise

    # -- the cluster -------------------------------------------------------------------------

    def broker_ids(self) -> set[int]:
        """The ids of the brokers the cluster reports."""

        async def call() -> set[int]:
            cluster = await (await self._admin()).describe_cluster()
            return {broker["node_id"] for broker in cluster["brokers"]}

        return self._run(call())

    async def _await_metadata(self, name: str, partitions: int) -> None:
        """Wait until every broker describes ``partitions`` partitions of ``name``, each with a leader.

        The controller answers a create or alter before the brokers' metadata has the change, and the
        next client may ask any broker."""
        client = await self._admin()
        nodes = {broker["node_id"] for broker in (await client.describe_cluster())["brokers"]}
        request = MetadataRequest([name], allow_auto_topic_creation=False)
        deadline = asyncio.get_running_loop().time() + CONNECT_TIMEOUT
        while True:
            for node in sorted(nodes):
                # aiokafka's describe_topics asks a random node; its _send_request takes the node to ask.
                (topic,) = (await client._send_request(request, node)).to_object()["topics"]
                described = topic["partitions"]
                if (
                    not topic["error_code"]
                    and len(described) == partitions
                    and all(p["leader"] >= 0 for p in described)
                ):
                    nodes.discard(node)
            if not nodes:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise TransientKafkaError(f"topic {name} was changed; brokers {sorted(nodes)} do not show it yet")
            await asyncio.sleep(0.05)

    # -- topics ------------------------------------------------------------------------------

    def create_topic(
        self, name: str, partitions: int = 1, replication_factor: int = 1, configs: Mapping[str, str] | None = None
    ) -> None:
        topic = NewTopic(name, partitions, replication_factor, topic_configs=dict(configs or {}))

        async def call() -> None:
            response = await (await self._admin()).create_topics([topic])
            _check(response.topic_errors, "cannot create topic", "CREATE")
            await self._await_metadata(name, partitions)

        self._run(call())

    def list_topics(self, internal: bool = False) -> list[str]:
        async def call() -> list[str]:
            return sorted(await (await self._admin()).list_topics())

        return [t for t in self._run(call()) if internal or not t.startswith("__")]

    def describe_topic(self, name: str) -> TopicInfo:
        """Partitions (leader, replicas, in-sync replicas) and the configs set on the topic."""

        async def call() -> TopicInfo:
            client = await self._admin()
            (topic,) = await client.describe_topics([name])
            if topic["error_code"] == _TOPIC_AUTHORIZATION_FAILED:
                raise AuthorizationError.denied("DESCRIBE", "topic", name)
            if topic["error_code"]:
                raise TopicError(
                    f"topic {name} does not exist"
                    if topic["error_code"] == 3
                    else f"cannot describe topic {name}: {for_code(topic['error_code']).__name__}"
                )
            (response,) = await client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
            partitions = sorted(
                PartitionInfo(p["partition"], p["leader"], list(p["replicas"]), list(p["isr"]))
                for p in topic["partitions"]
            )
            # Entries are (name, value, read_only, source, ...); like kafka-topics, show what was set on the topic.
            # A principal without DescribeConfigs on the topic sees none (error 29 on the resource).
            configs = {
                entry[0]: entry[1]
                for resource in response.resources
                if resource[0] != _TOPIC_AUTHORIZATION_FAILED
                for entry in resource[4]
                if entry[3] == _DYNAMIC_TOPIC_CONFIG
            }
            return TopicInfo(name, partitions, configs)

        return self._run(call())

    def alter_partitions(self, name: str, count: int) -> None:
        """Raise the partition count of a topic (Kafka cannot lower it)."""

        async def call() -> None:
            response = await (await self._admin()).create_partitions({name: NewPartitions(count)})
            _check(response.topic_errors, "cannot alter topic", "ALTER")
            await self._await_metadata(name, count)

        self._run(call())

    def alter_configs(self, name: str, configs: Mapping[str, str]) -> None:
        """Set the configs of topic ``name`` to ``configs`` (the ones set on it before are replaced)."""
        resource = ConfigResource(ConfigResourceType.TOPIC, name, configs=dict(configs))

        async def call() -> None:
            for response in await (await self._admin()).alter_configs([resource]):
                errors = [(name, code, message) for code, message, *_ in response.resources]
                _check(errors, "cannot alter topic", "ALTER_CONFIGS")

        self._run(call())

    def delete_topic(self, name: str) -> None:
        async def call() -> None:
            response = await (await self._admin()).delete_topics([name])
            _check(response.topic_error_codes, "cannot delete topic", "DELETE")

        self._run(call())

    def ensure_topic(
        self,
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
            info = self.describe_topic(name)
        except TopicError:
            try:
                self.create_topic(name, partitions, replication_factor, configs)
                return partitions
            except TopicError:  # created meanwhile by another run
                info = self.describe_topic(name)
        if exact and len(info.partitions) != partitions:
            raise TopicError(
                f"topic {name} has {len(info.partitions)} partitions, but this run needs {partitions}; "
                + mismatch_hint.format(partitions=len(info.partitions))
            )
        wanted = dict(configs or {})
        if enforce_configs and any(info.configs.get(k) != v for k, v in wanted.items()):
            self.alter_configs(name, {**info.configs, **wanted})
        return len(info.partitions)

    # -- offsets and groups ------------------------------------------------------------------

    def topic_offsets(
        self, topic: str, isolation_level: str = "read_uncommitted"
    ) -> tuple[dict[int, int], dict[int, int]]:
        """The beginning and end offset of every partition of ``topic``; under ``read_committed``
        the end is the last stable offset (no open transaction's records)."""
        tps = [TopicPartition(topic, p.partition) for p in self.describe_topic(topic).partitions]

        async def call() -> tuple[dict[int, int], dict[int, int]]:
            consumer = await self._consumer(isolation_level)
            begin = await consumer.beginning_offsets(tps)
            end = await consumer.end_offsets(tps)
            return {tp.partition: o for tp, o in begin.items()}, {tp.partition: o for tp, o in end.items()}

        return self._run(call())

    def committed_offsets(self, group: str, topic: str) -> dict[int, int]:
        """The offsets consumer group ``group`` committed for the partitions of ``topic``."""

        async def call() -> dict[int, int]:
            try:
                offsets = await (await self._admin()).list_consumer_group_offsets(group)
            except AIOKafkaError as exc:
                if not exc.retriable:  # e.g. the coordinator is still loading: nothing committed yet
                    raise
                return {}
            return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}

        return self._run(call())

    def list_groups(self) -> list[str]:
        """The consumer groups the cluster knows."""

        async def call() -> list[str]:
            return sorted(group for group, _ in await (await self._admin()).list_consumer_groups())

        return self._run(call())

    def group_members(self, groups: list[str]) -> int:
        """How many consumers the consumer groups ``groups`` have (a missing group has none)."""

        async def call() -> int:
            client, members = await self._admin(), 0
            # One group per request: aiokafka 0.14 reads a DescribeGroups v3 answer with the v2
            # schema (DescribeGroupsRequest_v3.RESPONSE_TYPE), which lacks each group's trailing
            # authorized_operations; with two groups in one answer the second is misread.
            for group in groups:
                for response in await client.describe_consumer_groups([group]):
                    # (error, group, state, protocol type, protocol, members) per group
                    members += sum(len(described[5]) for described in response.groups)
            return members

        return self._run(call())

    def delete_groups(self, groups: list[str]) -> list[str]:
        """Delete consumer groups and their committed offsets (a group with members is refused by
        the broker); return those that existed."""

        async def call() -> list[str]:
            client, deleted = await self._admin(), []
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

        return self._run(call())


def _one_call(method: Callable[..., T]) -> Callable[..., T]:
    """``method`` of ``Admin`` as a function of the bootstrap servers, on a connection of its own."""

    @functools.wraps(method)
    def call(bootstrap: str, *args: Any, security: ClientSecurity = PLAINTEXT, **kwargs: Any) -> T:
        with Admin(bootstrap, security=security) as kafka:
            return method(kafka, *args, **kwargs)

    return call


broker_ids = _one_call(Admin.broker_ids)
create_topic = _one_call(Admin.create_topic)
list_topics = _one_call(Admin.list_topics)
describe_topic = _one_call(Admin.describe_topic)
alter_partitions = _one_call(Admin.alter_partitions)
alter_configs = _one_call(Admin.alter_configs)
delete_topic = _one_call(Admin.delete_topic)
ensure_topic = _one_call(Admin.ensure_topic)
topic_offsets = _one_call(Admin.topic_offsets)
committed_offsets = _one_call(Admin.committed_offsets)
list_groups = _one_call(Admin.list_groups)
group_members = _one_call(Admin.group_members)
delete_groups = _one_call(Admin.delete_groups)
