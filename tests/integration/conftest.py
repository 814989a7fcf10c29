"""One Ray instance and one Kafka broker for the whole test session, started on first use.

Each test gets its own topic names and output directories. The brokers are stopped by pid
when the session ends, whether tests passed or not.
"""

from __future__ import annotations

import logging
import re
import uuid

import pytest

from mrkafka.devtools.launcher import Cluster
from tests.helpers import free_ports


@pytest.fixture(scope="session")
def ray_cluster():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


@pytest.fixture(params=["local", "inline", "ray"])
def runner(request) -> str:
    """Each end-to-end test runs once per runner; the ray one joins the session's Ray."""
    if request.param == "ray":
        request.getfixturevalue("ray_cluster")
    return request.param


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
def cluster(tmp_path_factory):
    """A broker of the test's own, for fault tests that kill it or stall its clients."""
    yield from _cluster(tmp_path_factory, 1)


@pytest.fixture
def cluster3(tmp_path_factory):
    """Three brokers of the test's own."""
    yield from _cluster(tmp_path_factory, 3)


@pytest.fixture
def cluster4(tmp_path_factory):
    """Four brokers of the test's own: room to move partitions that have three replicas."""
    yield from _cluster(tmp_path_factory, 4)


@pytest.fixture
def bootstrap(kafka_cluster) -> str:
    return kafka_cluster.bootstrap_servers


@pytest.fixture
def topic_name(request) -> str:
    """A topic name no other test uses."""
    return f"{re.sub(r'[^A-Za-z0-9]+', '-', request.node.name)[:60]}-{uuid.uuid4().hex[:8]}"
