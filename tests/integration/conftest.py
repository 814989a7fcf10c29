"""One Ray instance and one Kafka broker for the whole test session, started on first use.

Each test gets its own topic names and output directories. The brokers are stopped by pid
when the session ends, whether tests passed or not.
"""

from __future__ import annotations

import logging
import random
import re
import uuid

import pytest

from mrkafka.kafka.launcher import CONTROLLER_PORT_OFFSET, Cluster, port_free

logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


@pytest.fixture(scope="session")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


@pytest.fixture(params=["inline", "ray"])
def runner(request) -> str:
    """Each end-to-end test runs once per runner; the ray one joins the session's Ray."""
    if request.param == "ray":
        request.getfixturevalue("ray_cluster")
    return request.param


def _ephemeral_start() -> int:
    try:
        return int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(count: int) -> int:
    """A first client port such that a cluster of ``count`` nodes finds all its ports free.

    Below the ephemeral range: while a broker is down, clients retrying a connection to an
    ephemeral port can be handed that very port and connect to themselves, taking it."""
    top = min(_ephemeral_start(), 40000) - CONTROLLER_PORT_OFFSET - count
    for _ in range(100):
        port = random.randrange(15000, top)
        wanted = [port + i for i in range(count)] + [port + CONTROLLER_PORT_OFFSET + i for i in range(count)]
        if all(port_free(p) for p in wanted):
            return port
    raise RuntimeError("no free ports")


def _cluster(tmp_path_factory, brokers: int):
    cluster = Cluster(tmp_path_factory.mktemp(f"kafka{brokers}"), brokers=brokers, port=free_ports(brokers))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory):
    yield from _cluster(tmp_path_factory, 1)


@pytest.fixture(scope="session")
def kafka_cluster3(tmp_path_factory):
    yield from _cluster(tmp_path_factory, 3)


@pytest.fixture
def bootstrap(kafka_cluster) -> str:
    return kafka_cluster.bootstrap_servers


@pytest.fixture
def topic_name(request) -> str:
    """A topic name no other test uses."""
    return f"{re.sub(r'[^A-Za-z0-9]+', '-', request.node.name)[:60]}-{uuid.uuid4().hex[:8]}"
