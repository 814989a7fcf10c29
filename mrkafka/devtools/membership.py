"""``mrkafka kafka add-broker`` and ``remove-broker``: a broker joining a running cluster, and
one leaving it once its partitions were moved off (``mrkafka topic reassign``).

A broker added is a broker only: the metadata quorum's voters stay those the cluster was made
with. It takes the first free slot (its ports are the cluster's port plus the slot), is formatted
with the cluster's id and started as ``up`` starts a node. A broker removed is stopped and then
unregistered with Kafka's ``kafka-cluster unregister``, as Kafka's documentation decommissions a
KRaft broker (a stopped broker stays registered, fenced, otherwise); its slot and data go.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess

from mrkafka.devtools.launcher import MAX_BROKERS, Cluster
from mrkafka.devtools.tools import TOOLS, tool_command
from mrkafka.errors import BadInputError, SetupError
from mrkafka.kafka.admin import Admin

__all__ = ["add_broker", "remove_broker"]


def add_broker(cluster: Cluster, node_id: int | None = None) -> Cluster:
    """Start one more broker in ``cluster`` (id ``node_id``, default the largest id + 1); return
    the cluster with it."""
    if not cluster.pids():
        raise SetupError(f"the cluster in {cluster.data_dir} is not running (start it with: mrkafka kafka up)")
    if cluster.brokers >= MAX_BROKERS:
        raise SetupError(f"the cluster in {cluster.data_dir} has {cluster.brokers} brokers, the most it can have")
    node_id = max(cluster.broker_ids) + 1 if node_id is None else node_id
    if node_id in cluster.broker_ids or node_id < 0:
        raise BadInputError(f"broker id {node_id} is taken or negative (the brokers: {_ids(cluster.broker_ids)})")
    slot = min(set(range(MAX_BROKERS)) - set(cluster.slots))
    grown = dataclasses.replace(
        cluster,
        brokers=cluster.brokers + 1,
        broker_ids=(*cluster.broker_ids, node_id),
        slots=(*cluster.slots, slot),
        controllers=cluster.controllers,
    )
    grown.record()
    try:
        grown.start()
    except BaseException:
        grown.stop(node_id=node_id)
        shutil.rmtree(grown.node(node_id).directory, ignore_errors=True)
        cluster.record()
        raise
    return grown


def remove_broker(cluster: Cluster, node_id: int) -> Cluster:
    """Stop broker ``node_id`` of ``cluster``, which must be a broker only and hold no replica,
    and unregister it; return the cluster without it."""
    if node_id not in cluster.broker_ids:
        raise BadInputError(
            f"the cluster in {cluster.data_dir} has no broker {node_id} (its brokers: {_ids(cluster.broker_ids)})"
        )
    node = cluster.node(node_id)
    if node.controller:
        raise BadInputError(
            f"broker {node_id} is a controller too, a voter of the metadata quorum: only brokers added "
            "with add-broker can be removed"
        )
    with Admin(cluster.bootstrap_servers, security=cluster.admin_security()) as kafka:
        held = [
            f"{topic}-{p.partition}"
            for topic in kafka.list_topics(internal=True)
            for p in kafka.describe_topic(topic).partitions
            if node_id in p.replicas
        ]
    if held:
        raise BadInputError(
            f"broker {node_id} still holds {len(held)} partition(s) ({', '.join(held[:3])}"
            f"{', ...' if len(held) > 3 else ''}): move them off with mrkafka topic reassign first"
        )
    cluster.stop(node_id=node_id)
    settings = ["--config", str(cluster.admin_config)] if cluster.secured else []
    unregister = tool_command(
        TOOLS["kafka-cluster"],
        "unregister",
        "--bootstrap-server",
        _others(cluster, node_id),
        *settings,
        "--id",
        str(node_id),
    )
    done = subprocess.run(unregister, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SetupError(
            f"broker {node_id} stopped, but Kafka did not unregister it: {(done.stderr or done.stdout).strip()}"
        )
    keep = [i for i, n in enumerate(cluster.broker_ids) if n != node_id]
    shrunk = dataclasses.replace(
        cluster,
        brokers=cluster.brokers - 1,
        broker_ids=tuple(cluster.broker_ids[i] for i in keep),
        slots=tuple(cluster.slots[i] for i in keep),
        controllers=cluster.controllers,
    )
    shrunk.record()
    if shrunk.metrics_port is not None:
        shrunk.register_metrics()
    shutil.rmtree(node.directory, ignore_errors=True)
    return shrunk


def _others(cluster: Cluster, node_id: int) -> str:
    return ",".join(f"127.0.0.1:{n.port}" for n in cluster.nodes if n.node_id != node_id)


def _ids(ids: tuple[int, ...]) -> str:
    return ",".join(map(str, ids))
