"""What both engines need of Ray: a session, results with errors as themselves, job files shipped."""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError

from mrkafka.errors import JobFailedError, MrkafkaError, SetupError, WorkerLost

__all__ = ["across_nodes", "gcs_answers", "get_result", "ray_session", "ship_job_by_value", "wait_ready"]


@contextmanager
def ray_session(address: str | None = None) -> Iterator[None]:
    """Join the running Ray, the cluster at ``address`` / ``RAY_ADDRESS``, or start a local one
    (never one that ``ray start`` left on this machine, unless named)."""
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    _check_reachable(address)
    if ray.is_initialized():
        yield
        return
    # Ray warns on every start that token authentication (its default) is on.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    handler = signal.getsignal(signal.SIGTERM)
    # Workers of a cluster that this process did not start do not inherit its environment.
    debug = {"env_vars": {"MRKAFKA_DEBUG": "1"}} if os.environ.get("MRKAFKA_DEBUG") else None
    try:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, runtime_env=debug)
    except ConnectionError as exc:
        raise SetupError(f"cannot reach Ray at {address}: {exc}") from exc
    if address != "local":
        nodes = sum(node["Alive"] for node in ray.nodes())
        cpus = ray.cluster_resources().get("CPU", 0)
        sizes = f"{nodes} node{'s' * (nodes != 1)}, {cpus:g} CPU{'s' * (cpus != 1)}"
        print(f"mrkafka: joined the Ray cluster at {address}: {sizes}", file=sys.stderr)
    if threading.current_thread() is threading.main_thread():
        # ray.init installs a SIGTERM handler that dumps a stack and exits: keep the caller's
        # (the command line's turns SIGTERM into Ctrl-C, so that a run cleans up).
        signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        ray.shutdown()


def across_nodes(count: int) -> list[Any]:
    """Scheduling strategies that put ``count`` actors on the cluster's alive nodes in turn.

    For actors that reserve no CPU (they wait on others much of the time): Ray puts those on
    the driver's node, and its ``SPREAD`` strategy left all of a stream run's on one of two
    nodes. The affinity is soft, so an actor restarted after its node died goes elsewhere."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = sorted(node["NodeID"] for node in ray.nodes() if node["Alive"])
    return [NodeAffinitySchedulingStrategy(nodes[i % len(nodes)], soft=True) for i in range(count)]


def gcs_answers(timeout: float = 1.0) -> bool:
    """Whether Ray's GCS answers a request within ``timeout``.

    A SIGTERM to the whole process group (a terminal's, a service manager's) reaches the Ray
    processes that ``ray.init`` started in it: their GCS stops serving, and what was asked of the
    actors is then never answered, until Ray gives up on its GCS a minute later and ends the
    driver with exit 1. Ray has no public call for this check; its GCS client's key-value get
    takes a timeout."""
    try:
        ray._private.worker.global_worker.gcs_client.internal_kv_get(b"mrkafka", b"mrkafka", timeout=timeout)
    except Exception:
        return False
    return True


def wait_ready(refs: list, timeout: float) -> list:
    """The ``refs`` ready within ``timeout`` (``ray.wait`` in steps of half a second); those ready
    so far once a step ends with Ray's GCS not answering (see ``gcs_answers``)."""
    deadline = time.monotonic() + timeout
    pending, ready = list(refs), []
    while pending and (left := deadline - time.monotonic()) > 0:
        done, pending = ray.wait(pending, num_returns=len(pending), timeout=min(0.5, left))
        ready += done
        if pending and not gcs_answers():
            break
    return ready


#: How long the cluster at ``--ray-address`` has to accept a connection (Ray itself retries for minutes).
CONNECT_TIMEOUT_S = 5.0


def _check_reachable(address: str) -> None:
    """Fail within seconds when nothing listens at a ``host:port`` or ``ray://host:port`` address,
    or (``host:port``, a GCS) when it refuses this process's authentication token."""
    match = re.fullmatch(r"(ray://)?\[?([^\]/]+?)\]?:(\d+)/?", address)
    if match is None:  # "auto", "local": Ray's own lookup
        return
    client, host, port = match.groups()
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except (OSError, OverflowError) as exc:
        raise SetupError(f"cannot reach Ray at {address}: {getattr(exc, 'strerror', None) or exc}") from exc
    if not client and not _token_accepted(f"{host}:{port}"):
        raise SetupError(
            f"Ray at {address} refused this process's authentication token: give the cluster's, with "
            "RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH=FILE (or RAY_AUTH_TOKEN, or ~/.ray/auth_token)"
        )


def _token_accepted(gcs: str) -> bool:
    """Whether the GCS at ``gcs`` takes this process's token (Ray itself retries for 20 s, then
    says only that it cannot connect). Ray's GCS client logs the refusal on stderr, from C++: it
    is kept off the terminal, as the line above says it better."""
    from ray._raylet import GcsClient
    from ray.exceptions import AuthenticationError

    stderr = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            GcsClient(address=gcs).internal_kv_get(b"mrkafka", b"mrkafka", timeout=CONNECT_TIMEOUT_S)
    except AuthenticationError:
        return False
    except Exception:  # anything else: ray.init will say it
        return True
    finally:
        os.dup2(stderr, 2)
        os.close(stderr)
    return True


def get_result(refs: Any) -> Any:
    """``ray.get``, with the error a task raised re-raised as itself."""
    try:
        return ray.get(refs)
    except RayTaskError as exc:
        if isinstance(exc.cause, MrkafkaError):
            raise exc.cause from exc
        raise JobFailedError(f"a task failed: {exc.cause!r}") from exc
    except RayActorError as exc:
        raise WorkerLost(f"a task's process died: {exc}") from exc


def ship_job_by_value(job_cls: type) -> None:
    # A job file is not importable on the workers: send its module's code along.
    module = sys.modules.get(job_cls.__module__)
    if module is not None and job_cls.__module__.startswith("mrkafka_job_"):
        ray.cloudpickle.register_pickle_by_value(module)
