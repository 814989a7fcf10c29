"""A stream application's resources in Kafka, and the checks that keep them its own.

An application (``--application-id APP``) owns, as in Kafka Streams, the consumer groups
``APP`` (map workers) and ``APP-reducers``, and its internal topics ``APP-repartition``,
``APP-STORE-changelog`` and ``APP-identity``. The identity topic's first record names the
job whose state the others hold (class, name, parameters, aggregate, serde, store): a run of
another job under the same id would mix its state with this one's, and is refused at start.
``reset`` deletes all of it, as Kafka's ``kafka-streams-application-reset`` does.

A run holds ``STATE_DIR/APP/run.lock`` from its start to its end, and a reset holds it while
it deletes: a reset is refused while a run of the application on this machine is alive, even
one whose workers have not joined their groups yet (members of the groups, the other sign,
are seen from any machine), and a run is refused while a reset goes on. The identity record
says nothing here: it outlives the runs it names.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from mrkafka.core.counters import Counters
from mrkafka.errors import BadInputError, BadJobError, TopicError, TransientKafkaError
from mrkafka.io import fs
from mrkafka.job import JobSpec
from mrkafka.kafka import admin, rdkafka
from mrkafka.kafka.security import ClientSecurity, private_dir

__all__ = [
    "INTERNAL_SUFFIXES",
    "SESSION_TIMEOUT_S",
    "changelog_topic",
    "check_identity",
    "check_internal_topics",
    "committed_counts",
    "groups",
    "holding",
    "identity_topic",
    "internal_topics",
    "job_identity",
    "members",
    "reducer_group",
    "refuse_deleting",
    "repartition_topic",
    "reset",
]

INTERNAL_SUFFIXES = ("-repartition", "-changelog", "-identity")
#: How long a member of the application's groups may go silent before its group drops it
#: (the map workers' ``session.timeout.ms``): a worker killed, or whose leave was lost, stays a
#: member that long.
SESSION_TIMEOUT_S = 10.0
_IDENTITY_KEY = b"job"
T = TypeVar("T")


def repartition_topic(app: str) -> str:
    return f"{app}-repartition"


def changelog_topic(app: str, store: str) -> str:
    return f"{app}-{store}-changelog"


def identity_topic(app: str) -> str:
    return f"{app}-identity"


def reducer_group(app: str) -> str:
    # Reducers own fixed partitions (assigned, not balanced); a group whose members are the
    # map workers would refuse commits from consumers outside it, so they commit here.
    return f"{app}-reducers"


def groups(app: str) -> list[str]:
    return [app, reducer_group(app)]


def committed_counts(kafka: admin.Admin, app: str, input_topic: str) -> Counters:
    """What the application's commits have counted: the counts that the committed offsets of
    its groups carry as metadata (``APP`` on the input, ``APP-reducers`` on the repartition
    topic), summed. What a run counted is their difference from its start to its end, whatever
    workers died in between."""
    counts = Counters()
    for group, topic in ((app, input_topic), (reducer_group(app), repartition_topic(app))):
        for tp in kafka.committed(group, topic):
            counts.update(Counters.from_text(tp.metadata))
    return counts


def internal_topics(kafka: admin.Admin, app: str) -> list[str]:
    """The internal topics of ``app`` that exist."""
    return [name for name in kafka.list_topics() if name.startswith(f"{app}-") and name.endswith(INTERNAL_SUFFIXES)]


def job_identity(spec: JobSpec) -> dict[str, Any]:
    """What makes two runs' state interchangeable: the same job, with the same parameters."""
    job = spec.instantiate()
    cls = spec.job_cls
    return {
        "class": cls.__qualname__,
        "name": spec.name,
        "params": {name: job.params[name] for name in sorted(job.params)},
        "aggregate": cls.aggregate,
        "value_serde": cls.stream.value_serde,
        "store": cls.stream.store_name,
    }


def _describe(identity: dict[str, Any]) -> str:
    params = ", ".join(f"{k}={v!r}" for k, v in identity["params"].items())
    return f"{identity['class']} ({identity['name']}{'; ' + params if params else ''})"


def _just_made(call: Callable[[], T]) -> T:
    """``call()`` on the topic that ``ensure_topic`` just made sure of: a ``TopicError`` then
    says that a broker does not know the topic yet, or not as its leader (Kafka answers
    UNKNOWN_TOPIC_OR_PARTITION while a partition is being created, KAFKA-9930), and passes."""
    try:
        return call()
    except TopicError as exc:
        raise TransientKafkaError(str(exc)) from None


def _first_record(bootstrap: str, security: ClientSecurity, topic: str) -> bytes | None:
    for message in _just_made(lambda: list(rdkafka.read_partition(bootstrap, topic, 0, security))):
        if message.key() == _IDENTITY_KEY:
            return message.value()
    return None


def _write(bootstrap: str, security: ClientSecurity, topic: str, value: bytes) -> None:
    writer = rdkafka.Writer(bootstrap, security)
    writer.write(topic, 0, _IDENTITY_KEY, value)
    _just_made(lambda: writer.flush(topic))


def check_identity(kafka: Any, spec: JobSpec, app: str, replication: int) -> None:
    """Record this job as ``app``'s, or refuse the run if ``app`` holds another job's state.

    ``kafka`` is the driver's Kafka: ``admin.Admin``'s calls, and ``retry(f, ...)``, each
    retried while the broker is away. Two runs that start at once each write their identity:
    the first record decides."""
    topic = identity_topic(app)
    kafka.ensure_topic(topic, 1, {"cleanup.policy": "delete", "retention.ms": "-1"}, replication)
    mine = job_identity(spec)
    stored = kafka.retry(lambda: _first_record(kafka.bootstrap, kafka.security, topic))
    if stored is None:
        kafka.retry(lambda: _write(kafka.bootstrap, kafka.security, topic, json.dumps(mine).encode()))
        stored = kafka.retry(lambda: _first_record(kafka.bootstrap, kafka.security, topic))
    theirs = json.loads(stored)
    if theirs != mine:
        raise BadJobError(
            f"application {app} holds the state of {_describe(theirs)}, not of {_describe(mine)}: "
            f"use another --application-id, or delete its state with: mrkafka app reset {app}"
        )


def members(kafka: admin.Admin, app: str) -> int:
    """How many consumers are in the groups of ``app``: more than none while it runs."""
    return kafka.group_members(groups(app))


def refuse_deleting(kafka: admin.Admin, topic: str) -> None:
    """Refuse to delete one of Kafka's own topics, or an internal topic of a running application."""
    if topic.startswith("__"):
        raise BadInputError(f"topic {topic} is Kafka's own: deleting it loses every group's offsets (--force to do it)")
    if not topic.endswith(INTERNAL_SUFFIXES):
        return
    for group in kafka.list_groups():
        if group.endswith("-reducers") or not topic.startswith(f"{group}-"):
            continue
        if members(kafka, group):
            raise BadInputError(
                f"topic {topic} belongs to application {group}, which is running: stop it first (--force to delete)"
            )


@contextlib.contextmanager
def holding(state_dir: str | Path, app: str, doing: str) -> Iterator[None]:
    """Hold ``STATE_DIR/APP/run.lock`` for a run (``doing="running"``) or a reset
    (``"being reset"``); refused while another process holds it. ``STATE_DIR/APP``, which holds
    the application's stores and query endpoint, is made private (0700); ``STATE_DIR`` may be
    any directory, shared or not."""
    path = private_dir(Path(state_dir).expanduser() / app, "--state-dir") / "run.lock"
    lock = fs.Lock.take(path, doing)
    if lock is None:
        holder = fs.Lock.holder(path)
        what = f"{holder.doing} ({holder})" if holder and holder.doing else "running"
        raise BadInputError(f"application {app} is {what}: wait for it to end, or stop it")
    try:
        yield
    finally:
        lock.release()


def check_internal_topics(kafka: admin.Admin, app: str, topics: tuple[str, ...]) -> None:
    """Stop a run whose internal topics were deleted under it (a reset from elsewhere)."""
    missing = sorted(set(topics) - set(kafka.list_topics()))
    if missing:
        raise TopicError(
            f"the internal topic {missing[0]} of application {app} was deleted while it ran "
            f"(mrkafka app reset?): the run stops; run it again to start from the input's beginning"
        )


def reset(kafka: admin.Admin, app: str) -> list[str]:
    """Delete ``app``'s internal topics and its groups' committed offsets (hold ``holding``
    meanwhile); return what went."""
    deadline = time.monotonic() + SESSION_TIMEOUT_S + 5
    while members(kafka, app):  # a member that died without leaving goes at its session's end
        if time.monotonic() > deadline:
            raise BadInputError(f"application {app} is running: stop it before resetting it")
        time.sleep(0.5)
    deleted = []
    for topic in internal_topics(kafka, app):
        kafka.delete_topic(topic)
        deleted.append(f"topic {topic}")
    for group in kafka.delete_groups(groups(app)):
        deleted.append(f"group {group}")
    return deleted
