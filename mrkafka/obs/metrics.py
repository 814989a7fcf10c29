"""Prometheus metrics of a run: what a stream or batch run serves at ``/metrics``.

Workers keep their metric values as plain data (``MetricValues``: counters, gauges and histograms by
name and labels). The driver pulls every worker's values each time it checks on its
workers, about once a second, adds its own (consumer lag, the batch's splits), and serves
them all with ``prometheus_client``: a scrape reads what the driver last pulled, and never
waits for a worker. A worker that Ray restarted starts its values from zero; the driver
keeps what its previous instance counted, so counters only grow, and counts the restart.

``METRICS`` names every metric, its type, its meaning and its labels; the README's table
is the same list.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mrkafka.core.counters import RETRIES, Counters

__all__ = [
    "BUCKETS",
    "METRICS",
    "MetricValues",
    "RunMetrics",
    "monitor_dir",
    "register",
    "restarted_actor",
    "unregister",
    "with_counters",
]

#: name (as exported) -> (type, help, label names).
METRICS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # the run
    "mrkafka_up": ("gauge", "1 while the run is running", ("application",)),
    "mrkafka_run_info": ("info", "the run's settings, as labels (mode, job, topics, reducers, ...)", ("application",)),
    "mrkafka_worker_restarts_total": ("counter", "workers that Ray started again", ("application", "role")),
    # stream
    "mrkafka_records_consumed_total": (
        "counter",
        "records read by a task, per topic",
        ("application", "task", "topic"),
    ),
    "mrkafka_bytes_consumed_total": (
        "counter",
        "bytes of record values read by a task, per topic",
        ("application", "task", "topic"),
    ),
    "mrkafka_records_produced_total": (
        "counter",
        "records written by a task, per topic",
        ("application", "task", "topic"),
    ),
    "mrkafka_bytes_produced_total": (
        "counter",
        "bytes of record values written by a task, per topic",
        ("application", "task", "topic"),
    ),
    "mrkafka_consumer_lag_records": (
        "gauge",
        "input records not yet committed by group APP: end offset minus committed offset",
        ("application", "topic", "partition"),
    ),
    "mrkafka_commits_total": ("counter", "commits of a task", ("application", "task")),
    "mrkafka_commit_duration_seconds": ("histogram", "time a commit takes", ("application", "role")),
    "mrkafka_transactions_total": (
        "counter",
        "transactions ended, by outcome (exactly once)",
        ("application", "task", "outcome"),
    ),
    "mrkafka_end_to_end_latency_seconds": (
        "histogram",
        "input record timestamp to the commit of the output it changed",
        ("application",),
    ),
    "mrkafka_state_store_keys": ("gauge", "keys in a reducer's state store", ("application", "task", "store")),
    "mrkafka_state_store_bytes": (
        "gauge",
        "bytes of a reducer's RocksDB store (live data and memtables)",
        ("application", "task", "store"),
    ),
    "mrkafka_restore_records_restored": (
        "gauge",
        "changelog records restored in the current restore",
        ("application", "task"),
    ),
    "mrkafka_restore_records_to_restore": (
        "gauge",
        "changelog records the current restore has to read",
        ("application", "task"),
    ),
    "mrkafka_rebalances_total": ("counter", "partition assignments a map worker received", ("application",)),
    "mrkafka_retries_total": (
        "counter",
        "sessions started again after an error, by error class",
        ("application", "error_class"),
    ),
    # batch
    "mrkafka_splits": ("gauge", "input splits of the run", ("application",)),
    "mrkafka_splits_done_total": ("counter", "input splits mapped", ("application",)),
    "mrkafka_task_duration_seconds": ("histogram", "time a map or reduce task takes", ("application", "role")),
    # both: the run's Hadoop counters, as _COUNTERS.json holds them
    "mrkafka_job_counters_total": (
        "counter",
        "the run's counters (_COUNTERS.json), by group and name",
        ("application", "group", "name"),
    ),
}

#: How often the driver pulls its workers' metric values (a scrape reads the last ones).
PULL_S = 1.0
#: A run that was scraped waits at most this long at its end for one more scrape, so that a
#: monitor sees the values it ended with (a bounded run's lag of 0).
LAST_SCRAPE_WAIT_S = 6.0
#: Where ``mrkafka monitor`` keeps its Prometheus (``MRKAFKA_MONITOR_DIR``).
MONITOR_DIR = "~/.cache/mrkafka/monitor"

#: Histogram bucket upper bounds, in seconds.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

Labels = tuple[tuple[str, str], ...]


class MetricValues:
    """One process's metric values, as plain data that pickles (a worker's ``metric_values()``).

    ``labels`` are the process's own (``application``, a reducer's ``task``): a value's labels
    are those ``METRICS`` declares for its metric, in that order, each taken from the call or
    else from these."""

    def __init__(self, restarted: bool = False, **labels: Any) -> None:
        self.instance = uuid.uuid4().hex  # a restarted worker is a new instance
        self.restarted = restarted  # this instance is one Ray started again
        self.labels = labels
        self.values: dict[tuple[str, Labels], float] = {}
        self.histograms: dict[tuple[str, Labels], np.ndarray] = {}  # bucket counts (+Inf last), then the sum

    def _key(self, name: str, given: Mapping[str, Any]) -> tuple[str, Labels]:
        labels = {**self.labels, **given}
        return name, tuple((label, str(labels[label])) for label in METRICS[name][2])

    def inc(self, name: str, amount: float = 1, /, **labels: Any) -> None:
        key = self._key(name, labels)
        self.values[key] = self.values.get(key, 0) + amount

    def set(self, name: str, value: float, /, **labels: Any) -> None:
        self.values[self._key(name, labels)] = value

    def observe(self, name: str, seconds: float | np.ndarray, /, **labels: Any) -> None:
        """Count ``seconds`` (one value or many) in histogram ``name``; observing none makes the
        series exist, at zero, so that ``rate()`` has a sample before the first value."""
        seconds = np.atleast_1d(np.asarray(seconds, np.float64))
        key = self._key(name, labels)
        counts = self.histograms.get(key)
        if counts is None:
            counts = self.histograms[key] = np.zeros(len(BUCKETS) + 2)
        counts[: len(BUCKETS) + 1] += np.bincount(np.searchsorted(BUCKETS, seconds), minlength=len(BUCKETS) + 1)
        counts[-1] += seconds.sum()

    def add(self, other: MetricValues) -> None:
        """Add ``other``'s counters and histograms to these (gauges are left as they are)."""
        for key, value in other.values.items():
            if METRICS[key[0]][0] == "counter":
                self.values[key] = self.values.get(key, 0) + value
        for key, counts in other.histograms.items():
            self.histograms[key] = self.histograms.get(key, 0) + counts


class RunMetrics:
    """The driver's metrics: its own values and the latest of each worker's, served at
    ``/metrics`` on ``port`` (0: a free one) and, with ``textfile``, written there when the
    run ends (the Prometheus text format, as node_exporter's textfile collector reads it).

    While it serves, the run is registered with ``mrkafka monitor`` (``register``)."""

    def __init__(
        self,
        application: str,
        settings: Mapping[str, Any],
        port: int | None = None,
        textfile: str | None = None,
        address: str = "127.0.0.1",
    ) -> None:
        from prometheus_client import CollectorRegistry

        self.application = application
        self.settings = {name: str(value) for name, value in settings.items()}
        self._own = MetricValues(application=application)
        self._latest: dict[str, MetricValues] = {}  # worker -> its values, as last pulled
        self._gone = MetricValues()  # what instances since restarted counted
        self._textfile = textfile
        self._target: str | None = None  # the name it is registered as, while it serves
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self._server = None
        self._pulled = 0.0
        self._scrapes = 0
        self._lock = threading.Lock()  # the driver's updates against a scrape (the server's thread)
        self.set("mrkafka_up", 1)
        if port is not None:
            self._serve(port, address)

    def _serve(self, port: int, address: str) -> None:
        """Serve on ``address`` (loopback unless the user asks for more: the metrics name topics,
        groups and the run's settings)."""
        from prometheus_client import start_http_server

        try:
            self._server, _ = start_http_server(port, addr=address, registry=self.registry)
        except OSError as exc:
            from mrkafka.errors import SetupError

            raise SetupError(f"--metrics-port {port}: {exc.strerror or exc}") from exc
        self.port = self._server.server_port
        print(f"metrics: http://{address}:{self.port}/metrics", file=sys.stderr)
        self._target = f"run-{self.application}-{os.getpid()}"
        register(self._target, [self.port], "mrkafka", os.getpid())

    def inc(self, name: str, amount: float = 1, /, **labels: Any) -> None:
        with self._lock:
            self._own.inc(name, amount, **labels)

    def set(self, name: str, value: float, /, **labels: Any) -> None:
        with self._lock:
            self._own.set(name, value, **labels)

    def observe(self, name: str, seconds: float | np.ndarray, /, **labels: Any) -> None:
        with self._lock:
            self._own.observe(name, seconds, **labels)

    def add(self, values: MetricValues) -> None:
        with self._lock:
            self._own.add(values)

    def due(self, force: bool = False) -> bool:
        """Whether the workers' metric values are to be pulled now (every ``PULL_S``)."""
        if not force and time.monotonic() - self._pulled < PULL_S:
            return False
        self._pulled = time.monotonic()
        return True

    def pull(self, workers: Mapping[str, tuple[Any, str]], timeout: float = 1.0) -> None:
        """Pull ``metric_values()`` from each worker (name -> (actor, role)); one that does not
        answer within ``timeout`` (busy, restarting, gone) keeps its last values."""
        import ray

        refs = {name: actor.metric_values.remote() for name, (actor, _) in workers.items()}
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout) if refs else ([], [])
        for name, ref in refs.items():
            if ref in ready:
                try:
                    self.update(name, ray.get(ref), workers[name][1])
                except ray.exceptions.RayActorError:  # a dead worker: its error is the run's to report
                    continue

    def update(self, worker: str, values: MetricValues, role: str) -> None:
        """The values just pulled from ``worker``. A new instance of it means Ray restarted
        it, and so does a first one that says it is a restart (Ray restarted it before any pull)."""
        with self._lock:
            previous = self._latest.get(worker)
            if previous is None:
                restarted = values.restarted
            else:
                restarted = previous.instance != values.instance
                if restarted:
                    self._gone.add(previous)
            if restarted:
                self._own.inc("mrkafka_worker_restarts_total", role=role)
            self._latest[worker] = values

    def close(self) -> None:
        """The run ended: let a scraper see its last values, write the text file if asked,
        stop serving, unregister."""
        self.set("mrkafka_up", 0)
        if self._server is not None and self._scrapes:
            seen = self._scrapes
            deadline = time.monotonic() + LAST_SCRAPE_WAIT_S
            while self._scrapes == seen and time.monotonic() < deadline:
                time.sleep(0.05)
        if self._textfile is not None:
            from prometheus_client import write_to_textfile

            write_to_textfile(self._textfile, self.registry)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._target is not None:
            unregister(self._target)

    # -- prometheus_client's Collector ---------------------------------------------------------

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
            InfoMetricFamily,
        )

        self._scrapes += 1
        total = MetricValues()
        with self._lock:
            for values in (self._gone, self._own, *self._latest.values()):
                total.add(values)
                for key, value in values.values.items():
                    if METRICS[key[0]][0] != "counter":
                        total.values[key] = value  # a gauge: its task's latest
        families: dict[str, Any] = {}
        for name, (metric_type, documentation, labels) in METRICS.items():
            if metric_type == "info":
                family = InfoMetricFamily(name.removesuffix("_info"), documentation, labels=labels)
                family.add_metric([self.application], self.settings)
            else:
                cls = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily, "histogram": HistogramMetricFamily}
                # prometheus_client adds a counter's _total itself
                family = cls[metric_type](
                    name.removesuffix("_total") if metric_type == "counter" else name, documentation, labels=labels
                )
            families[name] = family
        for (name, labels), value in sorted(total.values.items()):
            families[name].add_metric([v for _, v in labels], value)
        for (name, labels), counts in sorted(total.histograms.items(), key=lambda item: item[0]):
            cumulative = np.cumsum(counts[:-1])
            buckets = [(str(bound), float(n)) for bound, n in zip((*BUCKETS, "+Inf"), cumulative)]
            families[name].add_metric([v for _, v in labels], buckets, float(counts[-1]))
        return iter(family for family in families.values() if family.samples)


def with_counters(values: MetricValues, *counters: Counters) -> MetricValues:
    """``values`` and a worker's (or task's) Hadoop counters, as one pulled copy: the counters
    as ``mrkafka_job_counters_total``, and the stream's retries (``Retries``) by error class."""
    pulled = MetricValues(values.restarted, **values.labels)
    pulled.instance, pulled.values, pulled.histograms = values.instance, dict(values.values), values.histograms
    for (group, name), value in itertools.chain.from_iterable(c.items() for c in counters):
        if group == RETRIES:
            pulled.inc("mrkafka_retries_total", value, error_class=name)
        pulled.inc("mrkafka_job_counters_total", value, group=group, name=name)
    return pulled


def monitor_dir() -> Path:
    return Path(os.environ.get("MRKAFKA_MONITOR_DIR", MONITOR_DIR)).expanduser()


def _target_file(name: str) -> Path:
    return monitor_dir() / "targets" / f"{name}.json"


#: The label of a target that names the process serving it (a meta label: Prometheus drops it).
PID_LABEL = "__meta_mrkafka_pid"


def register(name: str, ports: Iterable[int], job: str, pid: int | None = None) -> None:
    """Announce ``/metrics`` endpoints on 127.0.0.1 ``ports`` to ``mrkafka monitor`` (whether it
    runs now or starts later), as ``name``: a target file of Prometheus' file service discovery.
    With ``pid``, the target goes once that process is dead (``mrkafka monitor`` checks)."""
    path = _target_file(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = {"job": job} | ({PID_LABEL: str(pid)} if pid is not None else {})
    temporary = path.with_suffix(".tmp")  # Prometheus reads *.json: it never sees half a file
    temporary.write_text(json.dumps([{"targets": [f"127.0.0.1:{port}" for port in ports], "labels": labels}]))
    temporary.replace(path)


def unregister(name: str) -> None:
    _target_file(name).unlink(missing_ok=True)


def restarted_actor() -> bool:
    """Whether this process is a Ray actor that Ray started again (``False`` outside an actor)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():  # get_runtime_context() would start a Ray
        return False
    try:
        context = ray.get_runtime_context()
        if context.get_actor_id() is None:
            return False
        with warnings.catch_warnings():  # Ray's property reads its own deprecated actor_id
            warnings.simplefilter("ignore", DeprecationWarning)
            return bool(context.was_current_actor_reconstructed)
    except Exception:  # Ray cannot tell: a first instance
        return False
