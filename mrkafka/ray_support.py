"""What both engines need of Ray: a session, results with errors as themselves, job files shipped."""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError

from mrkafka.errors import JobFailedError, MrkafkaError, SetupError

__all__ = ["get_result", "ray_session", "ship_job_by_value"]


@contextmanager
def ray_session(address: str | None = None) -> Iterator[None]:
    """Join the running Ray, the cluster at ``address`` / ``RAY_ADDRESS``, or start a local one."""
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
    if threading.current_thread() is threading.main_thread():
        # ray.init installs a SIGTERM handler that dumps a stack and exits: keep the caller's
        # (the command line's turns SIGTERM into Ctrl-C, so that a run cleans up).
        signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        ray.shutdown()


#: How long the cluster at ``--ray-address`` has to accept a connection (Ray itself retries for minutes).
CONNECT_TIMEOUT_S = 5.0


def _check_reachable(address: str | None) -> None:
    """Fail within seconds when nothing listens at a ``host:port`` or ``ray://host:port`` address."""
    match = re.fullmatch(r"(?:ray://)?\[?([^\]/]+?)\]?:(\d+)/?", address or "")
    if match is None:  # no address, "auto", "local": Ray's own lookup
        return
    host, port = match.groups()
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except (OSError, OverflowError) as exc:
        raise SetupError(f"cannot reach Ray at {address}: {getattr(exc, 'strerror', None) or exc}") from exc


def get_result(refs: Any) -> Any:
    """``ray.get``, with the error a task raised re-raised as itself."""
    try:
        return ray.get(refs)
    except RayTaskError as exc:
        if isinstance(exc.cause, MrkafkaError):
            raise exc.cause from exc
        raise JobFailedError(f"a task failed: {exc.cause!r}") from exc
    except RayActorError as exc:
        raise JobFailedError(f"a task's process died: {exc}") from exc


def ship_job_by_value(job_cls: type) -> None:
    # A job file is not importable on the workers: send its module's code along.
    module = sys.modules.get(job_cls.__module__)
    if module is not None and job_cls.__module__.startswith("mrkafka_job_"):
        ray.cloudpickle.register_pickle_by_value(module)
