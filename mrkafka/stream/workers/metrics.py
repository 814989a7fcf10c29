"""What a worker counts, for the run's metrics (``mrkafka.obs.metrics``): a worker's
``Figures`` carry its application (and a reducer's task) as labels, so a call names only
what differs."""

from __future__ import annotations

from mrkafka.kafka.client import MIGRATED, RETRIABLE
from mrkafka.obs.metrics import Figures, restarted_actor
from mrkafka.stream.config import StreamConfig

__all__ = ["aborted", "committed", "consumed", "new", "produced"]


def new(config: StreamConfig, task: str | None = None) -> Figures:
    """A worker's figures, its counters of rare events at 0 (retries; a reducer's aborted
    transactions), so that their series exist before the first one happens."""
    labels = {"application": config.application_id} | ({"task": task} if task is not None else {})
    figures = Figures(restarted_actor(), **labels)
    for error_class in (RETRIABLE, MIGRATED):
        figures.inc("mrkafka_retries_total", 0, error_class=error_class)
    if task is not None:
        aborted(figures, config, task, 0)
    return figures


def consumed(figures: Figures, task: str, topic: str, records: int, nbytes: int) -> None:
    figures.inc("mrkafka_records_consumed_total", records, task=task, topic=topic)
    figures.inc("mrkafka_bytes_consumed_total", nbytes, task=task, topic=topic)


def produced(figures: Figures, task: str, topic: str, values: list[bytes | None]) -> None:
    figures.inc("mrkafka_records_produced_total", len(values), task=task, topic=topic)
    figures.inc("mrkafka_bytes_produced_total", sum(len(v) for v in values if v is not None), task=task, topic=topic)


def committed(figures: Figures, config: StreamConfig, task: str, role: str, seconds: float) -> None:
    figures.inc("mrkafka_commits_total", task=task)
    figures.observe("mrkafka_commit_duration_seconds", seconds, role=role)
    if config.exactly_once:
        figures.inc("mrkafka_transactions_total", task=task, outcome="committed")


def aborted(figures: Figures, config: StreamConfig, task: str, count: int = 1) -> None:
    """A task's transaction aborted (under exactly once; ``count`` 0 makes the series exist)."""
    if config.exactly_once:
        figures.inc("mrkafka_transactions_total", count, task=task, outcome="aborted")
