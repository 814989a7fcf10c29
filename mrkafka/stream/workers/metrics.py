"""What a worker counts, for the run's metrics (``mrkafka.obs.metrics``): a worker's
``MetricValues`` carry its application (and a reducer's task) as labels, so a call names only
what differs."""

from __future__ import annotations

from mrkafka.kafka.client import MIGRATED, RETRIABLE
from mrkafka.obs.metrics import MetricValues, restarted_actor
from mrkafka.stream.config import StreamConfig

__all__ = ["aborted", "committed", "consumed", "new", "produced"]


def new(config: StreamConfig, task: str | None = None) -> MetricValues:
    """A worker's metric values (a reducer's with its ``task``), its counters of rare events and
    its histograms at 0 (retries, a reducer's aborted transactions, commit times, latencies), so
    that their series exist before the first value: Prometheus' ``rate()`` needs a sample before."""
    labels = {"application": config.application_id} | ({"task": task} if task is not None else {})
    values = MetricValues(restarted_actor(), **labels)
    for error_class in (RETRIABLE, MIGRATED):
        values.inc("mrkafka_retries_total", 0, error_class=error_class)
    values.observe("mrkafka_commit_duration_seconds", (), role="map" if task is None else "reduce")
    if task is not None:
        aborted(values, config, task, 0)
        values.observe("mrkafka_end_to_end_latency_seconds", ())
    return values


def consumed(values: MetricValues, task: str, topic: str, records: int, nbytes: int) -> None:
    values.inc("mrkafka_records_consumed_total", records, task=task, topic=topic)
    values.inc("mrkafka_bytes_consumed_total", nbytes, task=task, topic=topic)


def produced(values: MetricValues, task: str, topic: str, records: list[bytes | None]) -> None:
    """``records``: the values of the records a task wrote to ``topic``."""
    values.inc("mrkafka_records_produced_total", len(records), task=task, topic=topic)
    values.inc("mrkafka_bytes_produced_total", sum(len(r) for r in records if r is not None), task=task, topic=topic)


def committed(values: MetricValues, config: StreamConfig, task: str, role: str, seconds: float) -> None:
    values.inc("mrkafka_commits_total", task=task)
    values.observe("mrkafka_commit_duration_seconds", seconds, role=role)
    if config.exactly_once:
        values.inc("mrkafka_transactions_total", task=task, outcome="committed")


def aborted(values: MetricValues, config: StreamConfig, task: str, count: int = 1) -> None:
    """A task's transaction aborted (under exactly once; ``count`` 0 makes the series exist)."""
    if config.exactly_once:
        values.inc("mrkafka_transactions_total", count, task=task, outcome="aborted")
