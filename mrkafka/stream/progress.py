"""What a stream run shows while it runs: on a terminal, and as metrics.

An unbounded run prints a status line every few seconds (``print_status``): input records
committed, their rate, and the lag. A bounded run draws a bar (``BoundedProgress``): input
records committed against the bounds taken at start, records per second, and while reducers
restore their stores, how far they are; then a bar of the part files written. Metrics
(``run_metrics``, ``--metrics-port`` or ``--metrics-file``) hold the workers' values, pulled
every few seconds (``pull_metrics``), and the input's lag.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable

import ray

from mrkafka.errors import KafkaError, TransientKafkaError
from mrkafka.job import JobSpec
from mrkafka.kafka import admin
from mrkafka.obs.metrics import RunMetrics
from mrkafka.obs.progress import Progress
from mrkafka.settings import StreamSettings
from mrkafka.stream.config import StreamConfig

__all__ = ["BoundedProgress", "print_status", "pull_metrics", "run_metrics"]

#: How often a bounded run asks its reducers how far their restore is.
RESTORE_POLL_S = 2.0
#: How long the run's last pulls of metrics wait for a worker (one that Ray is restarting).
FINAL_PULL_S = 5.0


def print_status(
    kafka: admin.Admin, config: StreamConfig, since: float, committed_then: int | None
) -> tuple[float, int | None]:
    """``APP: 1,234 records committed (56/s), lag 789``: the input group's progress and lag."""
    now = time.monotonic()
    try:
        committed = sum(kafka.committed_offsets(config.application_id, config.input_topic).values())
        _, ends = kafka.topic_offsets(config.input_topic, "read_committed")
    except TransientKafkaError as exc:
        print(f"{config.application_id}: waiting for Kafka ({exc})", file=sys.stderr)
        return now, committed_then
    speed = "" if committed_then is None else f" ({(committed - committed_then) / max(now - since, 1e-9):,.0f}/s)"
    print(
        f"{config.application_id}: {committed:,} records committed{speed}, lag {sum(ends.values()) - committed:,}",
        file=sys.stderr,
    )
    return now, committed


class BoundedProgress:
    """A bounded run's bars: input records committed (of ``bounds`` from ``begin``), then parts."""

    def __init__(
        self, begin: dict[int, int], bounds: dict[int, int], reducers: list, enabled: bool | None = None
    ) -> None:
        self.begin, self.bounds, self.reducers = begin, bounds, reducers
        self.total = sum(max(0, bound - begin.get(p, 0)) for p, bound in bounds.items())
        self._restoring: tuple[int, int] | None = None  # restored, to restore, over every reducer
        self._asked: tuple[float, list] = (0.0, [])  # when the reducers were asked, and their answers
        self.done, self.started = 0, time.monotonic()
        self.records = Progress(self.total, "records", enabled, detail=self._detail)
        self.parts: Progress | None = None

    def committed(self, offsets: dict[int, int]) -> None:
        """Group APP committed ``offsets`` of the input (partition -> next offset)."""
        done = sum(
            max(0, min(bound, offsets.get(p, self.begin.get(p, 0))) - self.begin.get(p, 0))
            for p, bound in self.bounds.items()
        )
        self.done = max(self.done, done)
        self._ask_reducers()
        self.records.advance_to(self.done)

    def _ask_reducers(self) -> None:
        """How far the reducers' restores are, asked every ``RESTORE_POLL_S``, never waited for."""
        if not self.records.enabled:
            return
        asked, refs = self._asked
        if refs and ray.wait(refs, num_returns=len(refs), timeout=0)[1]:
            return  # not all answered yet: ask again once they did
        if refs:
            try:
                answers = [a for a in ray.get(refs) if a is not None]
            except Exception:  # a reducer restarting: its run reports what matters
                answers = []
            done, total = sum(a[0] for a in answers), sum(a[1] for a in answers)
            self._restoring = (done, total) if total else None
            self._asked = (asked, [])
        if time.monotonic() - asked >= RESTORE_POLL_S:
            self._asked = (time.monotonic(), [r.restoring.remote() for r in self.reducers])

    def _detail(self) -> str:
        text = f"{self.done / max(time.monotonic() - self.started, 1e-9):,.0f} records/s"
        if self._restoring is not None:
            done, total = self._restoring
            text += f"; reducers restoring {done:,} of {total:,} changelog records"
        return text

    def writing(self, parts: int) -> Callable[[int], None]:
        """The input is done: a bar of ``parts`` part files; returns what advances it."""
        self.records.close()
        self.parts = Progress(parts, "parts", self.records.enabled, detail=str)
        return self.parts.advance_to

    def close(self) -> None:
        self.records.close()
        if self.parts is not None:
            self.parts.close()


def run_metrics(
    serving: contextlib.ExitStack, spec: JobSpec, run: StreamSettings, app: str, input_topic: str, output_topic: str
) -> RunMetrics | None:
    """The run's metrics, served (``--metrics-port``) or written at the end (``--metrics-file``), if asked."""
    if run.metrics_port is None and run.metrics_file is None:
        return None
    settings = {
        "mode": "stream",
        "job": spec.name,
        "input_topic": input_topic,
        "output_topic": output_topic,
        "reducers": run.reducers,
        "guarantee": run.guarantee,
        "state": run.state,
        "commit_interval_ms": run.commit_interval_ms,
        "bounded": run.until_end,
    }
    metrics = RunMetrics(app, settings, run.metrics_port, run.metrics_file, run.metrics_address)
    for role in ("map", "reduce"):  # at 0 until one is restarted
        metrics.inc("mrkafka_worker_restarts_total", 0, application=app, role=role)
    serving.callback(metrics.close)
    return metrics


def pull_metrics(
    metrics: RunMetrics,
    kafka: admin.Admin,
    config: StreamConfig,
    map_actors: list,
    reduce_actors: list,
    force: bool = False,
) -> None:
    """The workers' metric values and the input's lag per partition (end offset minus group APP's
    committed offset), at most every ``PULL_S`` unless ``force``d; Kafka away: the last values."""
    if not metrics.due(force):
        return
    workers = {f"map:{i}": (a, "map") for i, a in enumerate(map_actors)}
    workers |= {f"reduce:{k}": (a, "reduce") for k, a in enumerate(reduce_actors)}
    metrics.pull(workers, timeout=FINAL_PULL_S if force else 1.0)  # the last pulls wait for a restarting worker
    try:
        committed = kafka.committed_offsets(config.application_id, config.input_topic)
        begin, ends = kafka.topic_offsets(config.input_topic, "read_committed")
    except KafkaError:  # the broker away: the last values stand
        return
    for partition, end in ends.items():
        lag = end - committed.get(partition, begin.get(partition, 0))
        metrics.set(
            "mrkafka_consumer_lag_records",
            lag,
            application=config.application_id,
            topic=config.input_topic,
            partition=partition,
        )
