"""Starting and stopping aiokafka clients, with one clear error when no broker answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from aiokafka.errors import KafkaConnectionError

from mrkafka.errors import KafkaUnavailableError

__all__ = ["CONNECT_TIMEOUT", "started"]

CONNECT_TIMEOUT = 10.0
C = TypeVar("C")


@asynccontextmanager
async def started(client: C, bootstrap: str, timeout: float = CONNECT_TIMEOUT) -> AsyncIterator[C]:
    """``await client.start()`` within ``timeout``; ``client.stop()`` (or ``close()``) on the way out."""
    stop: Any = getattr(client, "stop", None) or client.close  # type: ignore[attr-defined]
    try:
        await asyncio.wait_for(client.start(), timeout)  # type: ignore[attr-defined]
    except (KafkaConnectionError, asyncio.TimeoutError, OSError) as exc:
        await stop()
        raise KafkaUnavailableError(
            f"no Kafka broker answers at {bootstrap} (start one with: mrkafka kafka up)"
        ) from exc
    try:
        yield client
    finally:
        await stop()
