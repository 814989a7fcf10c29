"""Topic, group and offset administration through librdkafka's admin client (confluent-kafka).

``Admin(bootstrap)`` holds one client for as many calls as its owner makes: a stream run's
driver keeps one for the whole run. The module's functions of the same names make one call
each on a client of their own, for commands that make one or two. ``SecurityAdmin``
(``mrkafka.kafka.acl``) adds the ACL and SCRAM calls to the same client.

Each call waits for its answer, serving librdkafka's error callback meanwhile (a refused
authentication ends the wait at once), and raises librdkafka's errors as mrkafka's, as
``mrkafka.kafka.rdkafka`` says. librdkafka reconnects by itself: a client outlives a
broker's restart.
"""

from __future__ import annotations

import concurrent.futures
import functools
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from confluent_kafka import (
    Consumer,
    IsolationLevel,
    KafkaException,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka import KafkaError as RdKafkaError
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from mrkafka.errors import AuthorizationError, TopicError, TransientKafkaError
from mrkafka.kafka import rdkafka
from mrkafka.kafka.rdkafka import CONNECT_TIMEOUT, Watch, settings
from mrkafka.kafka.security import PLAINTEXT, ClientSecurity

__all__ = [
    "Admin",
    "PartitionInfo",
    "TopicInfo",
    "alter_configs",
    "alter_partitions",
    "broker_ids",
    "change_configs",
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

T = TypeVar("T")
#: What ``Admin._wait`` returns for an error it was told means "absent".
ABSENT = object()

#: A group that does not exist, or whose coordinator has not loaded it yet: nothing committed.
_NO_GROUP = frozenset({RdKafkaError.GROUP_ID_NOT_FOUND, RdKafkaError.COORDINATOR_LOAD_IN_PROGRESS})


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


class Admin:
    """One librdkafka admin client for the cluster at ``bootstrap`` (see the module docstring).

    Use as a context manager, or ``close()`` it. Not for use from two threads at once."""

    def __init__(self, bootstrap: str, timeout: float = CONNECT_TIMEOUT, security: ClientSecurity = PLAINTEXT) -> None:
        self.bootstrap, self.timeout, self.security = bootstrap, timeout, security
        self._watch = Watch(bootstrap, security)
        self._client = AdminClient(settings(bootstrap, self._watch, timeout))
        self._readers: dict[str, tuple[Consumer, Watch]] = {}  # per group, for committed offsets

    def __enter__(self) -> Admin:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the consumers that read committed offsets (the admin client's connections
        close when it goes)."""
        readers, self._readers = self._readers, {}
        for reader, _ in readers.values():
            reader.close()

    def _wait(
        self,
        future: Any,
        operation: str = "DESCRIBE",
        resource: str = "cluster",
        name: str = "",
        absent: frozenset[int] = frozenset(),
        action: str = "",
    ) -> Any:
        """``future``'s result, or the error it is (``rdkafka.Watch.translate``); ``operation`` on
        ``resource`` ``name`` is what an authorization failure names. For an error whose code is
        in ``absent`` (a group that does not exist, say), ``ABSENT``. ``action`` (``cannot
        create topic t``) begins the message of an error of no known kind."""
        self._watch.clear()
        while not future.done():
            concurrent.futures.wait([future], timeout=0.05)  # returns as soon as the answer is in
            self._client.poll(0)  # serves error_cb: a refused authentication ends the wait at once
            self._watch.check()
        try:
            return future.result()
        except KafkaException as exc:
            if exc.args[0].code() in absent:
                return ABSENT
            raise self._watch.translate(exc.args[0], operation, resource, name, action) from None

    def _each(self, futures: Mapping[Any, Any], operation: str, resource: str, verb: str) -> dict[Any, Any]:
        """The result of every future of ``futures`` (keyed by a resource's name), or the first
        error (``cannot VERB RESOURCE NAME: ...``)."""
        return {
            key: self._wait(future, operation, resource, str(key), action=f"cannot {verb} {resource} {key}")
            for key, future in futures.items()
        }

    # -- the cluster -------------------------------------------------------------------------

    def broker_ids(self) -> set[int]:
        """The ids of the brokers the cluster reports."""
        return set(self.brokers())

    def brokers(self) -> dict[int, str | None]:
        """The brokers the cluster reports: id -> rack (None: the broker has none)."""
        cluster = self._wait(self._client.describe_cluster(request_timeout=self.timeout))
        return {node.id: node.rack or None for node in cluster.nodes}

    def _await_metadata(self, name: str, partitions: int | None = None) -> None:
        """Wait until every broker describes ``partitions`` partitions of ``name`` (any number if
        None), each with a leader.

        The controller answers a create or alter before the brokers' metadata has the change, and
        the next client may ask any broker. A client whose only address is one broker's asks that
        broker (librdkafka connects to no other until it needs one)."""
        nodes = self._wait(self._client.describe_cluster(request_timeout=self.timeout)).nodes
        waiting = {f"{node.host}:{node.port}" for node in nodes}
        deadline = time.monotonic() + self.timeout
        while waiting:
            for address in sorted(waiting):
                client = AdminClient(settings(address, self._watch, self.timeout))
                try:
                    topic = client.list_topics(name, timeout=self.timeout).topics.get(name)
                except KafkaException:
                    continue
                if (
                    topic is not None
                    and topic.error is None
                    and topic.partitions
                    and partitions in (None, len(topic.partitions))
                    and all(p.leader >= 0 for p in topic.partitions.values())
                ):
                    waiting.discard(address)
            if waiting and time.monotonic() > deadline:
                raise TransientKafkaError(f"topic {name} was changed; brokers at {sorted(waiting)} do not show it yet")
            if waiting:
                time.sleep(0.05)

    # -- topics ------------------------------------------------------------------------------

    def create_topic(
        self, name: str, partitions: int = 1, replication_factor: int = 1, configs: Mapping[str, str] | None = None
    ) -> None:
        topic = NewTopic(name, partitions, replication_factor, config=dict(configs or {}))
        futures = self._client.create_topics([topic], request_timeout=self.timeout, operation_timeout=self.timeout)
        self._each(futures, "CREATE", "topic", "create")
        self._await_metadata(name, partitions)

    def list_topics(self, internal: bool = False) -> list[str]:
        self._watch.clear()
        try:
            topics = self._client.list_topics(timeout=self.timeout).topics
        except KafkaException as exc:
            self._client.poll(0)  # serves error_cb: a refused login says why
            raise self._watch.translate(exc.args[0]) from None
        return sorted(t for t in topics if internal or not t.startswith("__"))

    def describe_topic(self, name: str) -> TopicInfo:
        """Partitions (leader, replicas, in-sync replicas) and the configs set on the topic."""
        described = self._described(name)
        partitions = sorted(
            PartitionInfo(p.id, p.leader.id if p.leader else -1, [n.id for n in p.replicas], [n.id for n in p.isr])
            for p in described.partitions
        )
        return TopicInfo(name, partitions, self._topic_configs(name))

    def _described(self, name: str) -> Any:
        (future,) = self._client.describe_topics(TopicCollection([name]), request_timeout=self.timeout).values()
        return self._wait(future, "DESCRIBE", "topic", name)

    def _topic_configs(self, name: str) -> dict[str, str]:
        """What was set on the topic itself, as ``kafka-topics --describe`` shows; none for a
        principal without DescribeConfigs on it."""
        resource = ConfigResource(ResourceType.TOPIC, name)
        (future,) = self._client.describe_configs([resource], request_timeout=self.timeout).values()
        try:
            entries: dict[str, ConfigEntry] = self._wait(future, "DESCRIBE_CONFIGS", "topic", name)
        except AuthorizationError:
            return {}
        return {
            key: entry.value
            for key, entry in entries.items()
            if entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
        }

    def topic_id(self, name: str) -> str:
        """The id Kafka gave topic ``name`` when it was created: a topic deleted and created
        again under the same name has another."""
        return str(self._described(name).topic_id)

    def alter_partitions(self, name: str, count: int) -> None:
        """Raise the partition count of a topic (Kafka cannot lower it)."""
        futures = self._client.create_partitions(
            [NewPartitions(name, count)], request_timeout=self.timeout, operation_timeout=self.timeout
        )
        self._each(futures, "ALTER", "topic", "alter")
        self._await_metadata(name, count)

    def alter_configs(self, name: str, configs: Mapping[str, str]) -> None:
        """Set the configs of topic ``name`` to ``configs`` (the ones set on it before are replaced)."""
        self.change_configs(name, configs, set(self._topic_configs(name)) - set(configs))

    def change_configs(self, name: str, configs: Mapping[str, str], deleted: Iterable[str] = ()) -> None:
        """Set ``configs`` on topic ``name`` and remove the ``deleted`` ones from it (back to the
        broker's default), leaving the others as they are: one IncrementalAlterConfigs, which
        changes all or nothing."""
        entries = [
            *(ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET) for key, value in configs.items()),
            *(ConfigEntry(key, None, incremental_operation=AlterConfigOpType.DELETE) for key in sorted(deleted)),
        ]
        resource = ConfigResource(ResourceType.TOPIC, name, incremental_configs=entries)
        (future,) = self._client.incremental_alter_configs([resource], request_timeout=self.timeout).values()
        self._wait(future, "ALTER_CONFIGS", "topic", name, action=f"cannot alter topic {name}")

    def delete_topic(self, name: str) -> None:
        futures = self._client.delete_topics([name], request_timeout=self.timeout, operation_timeout=self.timeout)
        self._each(futures, "DELETE", "topic", "delete")

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
        broker whose metadata does not have the topic yet). A topic that a broker does not show
        but the controller has (created by another run meanwhile, or by this one's create that
        timed out and is retried) is waited for on every broker before it is described."""
        try:
            info = self.describe_topic(name)
        except TopicError:
            try:
                self.create_topic(name, partitions, replication_factor, configs)
                return partitions
            except TopicError:  # it exists: on the controller, maybe not yet on the broker asked
                self._await_metadata(name)
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
        level = IsolationLevel[isolation_level.upper()]

        def offsets(spec: OffsetSpec) -> dict[int, int]:
            futures = self._client.list_offsets(
                {tp: spec for tp in tps}, isolation_level=level, request_timeout=self.timeout
            )
            return {
                tp.partition: self._wait(future, "DESCRIBE", "topic", topic).offset for tp, future in futures.items()
            }

        return offsets(OffsetSpec.earliest()), offsets(OffsetSpec.latest())

    def delete_records(self, topic: str, partition: int, before: int) -> None:
        """Delete the records of one partition before offset ``before`` (Kafka's DeleteRecords)."""
        futures = self._client.delete_records(
            [TopicPartition(topic, partition, before)], request_timeout=self.timeout, operation_timeout=self.timeout
        )
        for future in futures.values():
            self._wait(future, "DELETE", "topic", topic, action=f"cannot delete records of topic {topic}")

    def committed_offsets(self, group: str, topic: str) -> dict[int, int]:
        """The offsets consumer group ``group`` committed for the partitions of ``topic``."""
        return {tp.partition: tp.offset for tp in self.committed(group, topic) if tp.offset >= 0}

    def committed(self, group: str, topic: str) -> list[TopicPartition]:
        """What consumer group ``group`` committed for the partitions of ``topic``: offsets, and
        the metadata given with them (an offset below 0: none committed).

        Asked through a consumer of the group that joins nothing, not the admin client: its
        ListConsumerGroupOffsets crashes the process when the coordinator answers
        NOT_COORDINATOR (librdkafka issue 5040, open in 2.16). read_uncommitted, so that
        offsets an open transaction holds do not make it wait: they are not committed yet."""
        if group not in self._readers:
            self._readers[group] = rdkafka.consumer(self.bootstrap, self.security, "read_uncommitted", group=group)
        reader, watch = self._readers[group]
        watch.clear()
        try:
            partitions = rdkafka.partitions(reader, watch, topic, self.timeout)
        except TopicError:
            return []
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                committed = reader.committed([TopicPartition(topic, p) for p in partitions], timeout=self.timeout)
                break
            except KafkaException as exc:
                watch.check()
                error = watch.translate(exc.args[0], "DESCRIBE", "group", group)
                if not isinstance(error, TransientKafkaError) or time.monotonic() > deadline:
                    raise error from None
                time.sleep(0.1)  # the group's coordinator moving or loading: librdkafka finds it again
        return committed

    def list_groups(self) -> list[str]:
        """The consumer groups the cluster knows."""
        listed = self._wait(self._client.list_consumer_groups(request_timeout=self.timeout))
        return sorted(group.group_id for group in listed.valid)

    def group_members(self, groups: list[str]) -> int:
        """How many consumers the consumer groups ``groups`` have (a missing group has none)."""
        futures = self._client.describe_consumer_groups(list(groups), request_timeout=self.timeout)
        described = (self._wait(future, "DESCRIBE", "group", group, _NO_GROUP) for group, future in futures.items())
        return sum(len(group.members) for group in described if group is not ABSENT)

    def delete_groups(self, groups: list[str]) -> list[str]:
        """Delete consumer groups and their committed offsets (a group with members is refused by
        the broker); return those that existed."""
        deleted = []
        for group, future in self._client.delete_consumer_groups(list(groups), request_timeout=self.timeout).items():
            action = f"cannot delete group {group}"
            if self._wait(future, "DELETE", "group", group, _NO_GROUP, action) is not ABSENT:
                deleted.append(group)
        return deleted


def _one_call(method: Callable[..., T]) -> Callable[..., T]:
    """``method`` of ``Admin`` as a function of the bootstrap servers, on a client of its own."""

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
change_configs = _one_call(Admin.change_configs)
delete_topic = _one_call(Admin.delete_topic)
ensure_topic = _one_call(Admin.ensure_topic)
topic_offsets = _one_call(Admin.topic_offsets)
committed_offsets = _one_call(Admin.committed_offsets)
list_groups = _one_call(Admin.list_groups)
group_members = _one_call(Admin.group_members)
delete_groups = _one_call(Admin.delete_groups)
