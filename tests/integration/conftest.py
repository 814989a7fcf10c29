"""One Ray instance for the whole test session (Kafka's broker fixture lives beside it)."""

from __future__ import annotations

import logging

import pytest


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
