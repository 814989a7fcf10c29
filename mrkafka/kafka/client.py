"""Starting and stopping aiokafka clients, with one clear error when no broker answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from aiokafka.errors import KafkaConnectionError

from mrkafka.errors import KafkaUnavailableError

__all__ = ["CONNECT_TIMEOUT", "BatchSender", "start", "started"]

CONNECT_TIMEOUT = 10.0
C = TypeVar("C")


async def start(client: Any, bootstrap: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """``await client.start()`` within ``timeout``, or one clear error (the client stopped)."""
    try:
        await asyncio.wait_for(client.start(), timeout)
    except (KafkaConnectionError, asyncio.TimeoutError, OSError) as exc:
        await _stop(client)
        raise KafkaUnavailableError(
            f"no Kafka broker answers at {bootstrap} (start one with: mrkafka kafka up)"
        ) from exc


async def _stop(client: Any) -> None:
    await (client.stop() if hasattr(client, "stop") else client.close())


@asynccontextmanager
async def started(client: C, bootstrap: str, timeout: float = CONNECT_TIMEOUT) -> AsyncIterator[C]:
    """The client, started (see ``start``), and stopped on the way out."""
    await start(client, bootstrap, timeout)
    try:
        yield client
    finally:
        await _stop(client)


class BatchSender:
    """Appends records to per-partition batches and sends each batch when it is full.

    Records go to explicit partitions, so the caller's partitioner decides placement.
    ``flush`` sends what is left and waits until the broker acknowledged everything.
    """

    MAX_PENDING = 64  # batches sent but not yet acknowledged before appending waits

    def __init__(self, producer: Any) -> None:
        self.producer = producer
        self._batches: dict[tuple[str, int], Any] = {}
        self._pending: list[asyncio.Future] = []
        self.sent = 0

    async def append(
        self, topic: str, partition: int, key: bytes | None, value: bytes | None,
        timestamp: int | None = None, headers: list[tuple[str, bytes]] | None = None,
    ) -> None:  # fmt: skip
        slot = (topic, partition)
        while True:
            batch = self._batches.get(slot)
            if batch is None:
                batch = self._batches[slot] = self.producer.create_batch()
            if batch.append(key=key, value=value, timestamp=timestamp, headers=headers or []) is not None:
                self.sent += 1
                return
            if not batch.record_count():
                raise ValueError(f"a record of {len(value or b'')} bytes is larger than a Kafka batch")
            await self._send(slot)

    async def _send(self, slot: tuple[str, int]) -> None:
        batch = self._batches.pop(slot)
        topic, partition = slot
        self._pending.append(await self.producer.send_batch(batch, topic, partition=partition))
        if len(self._pending) >= self.MAX_PENDING:
            await self._pending.pop(0)

    async def flush(self) -> list[Any]:
        """Send every open batch and wait for all acknowledgements; return their metadata."""
        for slot in list(self._batches):
            await self._send(slot)
        pending, self._pending = self._pending, []
        return list(await asyncio.gather(*pending))
