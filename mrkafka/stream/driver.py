"""The stream driver: ``run_stream`` runs one application on Ray actors.

``run_stream`` creates the internal topics, starts the workers as Ray actors (restarted by
Ray if their process dies; they resume from committed offsets and restored state), and runs
until stopped (Ctrl-C, SIGTERM: flush, commit, exit 0) or, with ``until_end``, up to the
input's end offsets taken at start; then ``output`` gets the final state in the batch layout.

Every wait of the driver also watches the workers' runs, so a worker that fails ends the
run with its error, and (with metrics) pulls the workers' metric values and the input's lag; every
Kafka call of the driver waits out a broker that is away, for at most the task timeout.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import ray

from mrkafka.cluster.ray_support import (
    across_nodes,
    gcs_answers,
    get_result,
    ray_session,
    ship_job_by_value,
    wait_ready,
)
from mrkafka.core.counters import Counters
from mrkafka.core.report import Report
from mrkafka.errors import BadInputError, Interrupted, MrkafkaError, TransientKafkaError
from mrkafka.io import fs
from mrkafka.io.commit import OutputCommitter, part_name
from mrkafka.job import JobSpec
from mrkafka.kafka import admin
from mrkafka.kafka.acl import check_access
from mrkafka.kafka.client import Backoff
from mrkafka.kafka.security import PLAINTEXT, ClientSecurity
from mrkafka.obs.histogram import LatencyHistogram
from mrkafka.obs.metrics import RunMetrics
from mrkafka.settings import StreamSettings
from mrkafka.stream import application
from mrkafka.stream.config import MAX_MESSAGE_BYTES, StreamConfig
from mrkafka.stream.progress import BoundedProgress, print_status, pull_metrics, run_metrics
from mrkafka.stream.queries import QueryServer
from mrkafka.stream.state.stores import rocksdict_module
from mrkafka.stream.workers import MapWorker, ReduceWorker

__all__ = ["run_stream"]

#: A worker whose process dies is started again by Ray, however often: it resumes from its
#: last commit, as Kafka Streams replaces a dead stream thread.
ACTOR_RESTARTS = -1
#: How long a stopped worker may take for its last commit before it is killed.
STOP_TIMEOUT_S = 60.0
_WAIT_S = 0.25
T = TypeVar("T")


class _Kafka:
    """The driver's Kafka: one admin connection for the run (``admin.Admin``), its calls made
    as ``kafka.describe_topic(...)``, each retried while the broker is away (up to the task
    timeout)."""

    def __init__(self, bootstrap: str, task_timeout_s: float, security: ClientSecurity = PLAINTEXT) -> None:
        self.bootstrap, self.security = bootstrap, security
        self.admin = admin.Admin(bootstrap, security=security)
        self.backoff = Backoff("the stream driver", task_timeout_s)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return functools.partial(self.retry, getattr(self.admin, name))

    def close(self) -> None:
        self.admin.close()

    def retry(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``call(*args, **kwargs)``, again while it fails with a ``TransientKafkaError``."""
        while True:
            try:
                result = call(*args, **kwargs)
            except TransientKafkaError as exc:
                if not self.backoff.failures and sys.stderr.isatty():
                    print(f"mrkafka: {exc}; retrying for up to {self.backoff.timeout:.0f} s", file=sys.stderr)
                self.backoff.sleep(exc)
                continue
            self.backoff.reset()
            return result


def _prepare_topics(kafka: _Kafka, config: StreamConfig, output_configs: dict[str, str]) -> int:
    """Internal topics need exactly R partitions: another count would misroute keys.

    As Kafka Streams creates them: the repartition topic keeps records until reducers have
    committed and deleted them (``retention.ms=-1``), the changelog is compacted; with three
    brokers or more, every topic mrkafka creates has three replicas, two of them in sync.
    Returns the output topic's partition count."""
    replication = min(3, len(kafka.broker_ids()))
    common = {"max.message.bytes": str(MAX_MESSAGE_BYTES)}
    if replication == 3:
        common["min.insync.replicas"] = "2"
    app = config.application_id
    application.check_identity(kafka, config.spec, app, replication)
    hint = f"run with --reducers {{partitions}}, or delete the application's state: mrkafka app reset {app}"
    kafka.ensure_topic(
        config.repartition_topic,
        config.reducers,
        {**common, "cleanup.policy": "delete", "retention.ms": "-1"},
        replication,
        enforce_configs=True,
        mismatch_hint=hint,
    )
    kafka.ensure_topic(
        config.changelog_topic,
        config.reducers,
        {**common, "cleanup.policy": "compact"},
        replication,
        enforce_configs=True,
        mismatch_hint=hint,
    )
    # The output topic may have any partition count; a missing one is created with R.
    output_topic_configs = {**common, **output_configs}
    return kafka.ensure_topic(config.output_topic, config.reducers, output_topic_configs, replication, exact=False)


def _check_access(kafka: _Kafka, config: StreamConfig, topics: dict[str, list[str]]) -> None:
    """Stop at start, naming the operation and resource, when the run's principal lacks an ACL
    it will need on ``topics`` or the application's consumer groups (Kafka Streams' list); wait
    out a broker that is away, as every call of the driver does."""
    groups = {config.application_id: ["READ"], config.reducer_group: ["READ"]}
    kafka.retry(check_access, config.bootstrap, config.security, topics, groups)


def run_stream(spec: JobSpec, settings: StreamSettings, *, status_every_s: float | None = None) -> Report:
    """Run ``spec``'s job as ``settings`` say; see the module docstring. Every ``status_every_s``
    an unbounded run prints its progress."""
    run = settings.resolved(spec.name)
    if run.state == "rocksdb":  # what every worker would meet, met here once
        rocksdict_module()
        _check_state_dir(Path(run.state_dir).expanduser())
    app, input_topic, output_topic = run.application_id, run.input_topic, run.output_topic
    if input_topic == output_topic:
        raise BadInputError(f"the input topic {input_topic} is also the output topic: the run would feed itself")
    if input_topic.startswith(f"{app}-") and input_topic.endswith(application.INTERNAL_SUFFIXES):
        raise BadInputError(f"the input topic {input_topic} is an internal topic of application {app}")
    security = ClientSecurity.read(run.command_config) if run.command_config else PLAINTEXT
    kafka = _Kafka(run.bootstrap, run.task_timeout_s, security)
    with application.holding(run.state_dir, app, "running"), contextlib.closing(kafka):
        return _run(spec, run, kafka, status_every_s)


def _run(spec: JobSpec, run: StreamSettings, kafka: _Kafka, status_every_s: float | None) -> Report:
    config = StreamConfig.of(spec, run, security=kafka.security)
    input_topic, output_topic = run.input_topic, config.output_topic
    _check_access(kafka, config, {input_topic: ["READ"]})  # before anything is created
    input_partitions = len(kafka.describe_topic(input_topic).partitions)  # a clear error if missing
    output_partitions = _prepare_topics(kafka, config, dict(spec.job_cls.stream.output_topic_configs))
    _check_access(kafka, config, {output_topic: ["WRITE"], **{t: ["READ", "WRITE"] for t in config.internal_topics}})
    workers = _Workers(dataclasses.replace(config, output_partitions=output_partitions), kafka)
    committer = OutputCommitter(run.output, run.overwrite) if run.output is not None else None
    bounds = kafka.topic_offsets(input_topic, "read_committed") if run.until_end else None
    counted_before = application.committed_counts(kafka, run.application_id, input_topic)

    started = time.monotonic()
    with contextlib.ExitStack() as serving:
        workers.metrics = run_metrics(serving, spec, run, config.application_id, input_topic, output_topic)
        serving.enter_context(ray_session(run.ray_address))  # once the metrics port is taken: a taken one fails first
        failed, interrupted = True, False
        try:  # from here a stop (Ctrl-C, SIGTERM) is graceful, during start-up too
            workers.start(input_partitions, bounds[1] if bounds else None, serving)
            if bounds is None:
                _run_unbounded(kafka, config, workers.check, status_every_s)
            else:
                workers.finish(*bounds, committer)
            failed = False
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM (see mrkafka.cli)
            interrupted = True
            # Unbounded: stop gracefully (a last commit), as Kafka Streams' close(). Bounded: the
            # output would not be written anyway, and what was done is committed: stop at once.
            failed = bounds is not None
        finally:
            try:  # every worker stopped first: none writes a part after the output's abort
                workers.stop(failed, interrupted, graceful=not (interrupted and bounds is not None))
            finally:
                if failed and committer is not None:
                    committer.abort()
    seconds = time.monotonic() - started
    if interrupted and bounds is not None:
        raise Interrupted(
            "interrupted before the input's end: no output was written "
            "(what was processed is committed in Kafka; run again to go on from there)"
        )
    workers.counters.update(application.committed_counts(kafka, run.application_id, input_topic).minus(counted_before))
    if committer is not None:
        committer.commit(workers.counters)
    destination = committer.path if committer is not None else output_topic
    latency = workers.latency
    return Report(
        config.application_id, workers.counters, seconds, destination, latency.percentile(50), latency.percentile(99)
    )


class _Workers:
    """A run's map and reduce workers (Ray actors), their runs, and what they counted."""

    def __init__(self, config: StreamConfig, kafka: _Kafka) -> None:
        self.config, self.kafka = config, kafka
        self.metrics: RunMetrics | None = None
        self.map_actors: list = []
        self.map_runs: list = []
        self.reduce_actors: list = []
        self.reduce_runs: list = []
        self.counters, self.latency = Counters(), LatencyHistogram()
        self._topics_checked = time.monotonic()

    def check(self) -> None:
        """What every wait of the driver does: end the run on a worker's error; pull metrics."""
        _check_runs(self.map_runs + self.reduce_runs)
        self.pull_metrics()
        if time.monotonic() - self._topics_checked > 5:
            self._topics_checked = time.monotonic()
            application.check_internal_topics(self.kafka, self.config.application_id, self.config.internal_topics)

    def pull_metrics(self, force: bool = False) -> None:
        if self.metrics is not None:
            pull_metrics(self.metrics, self.kafka.admin, self.config, self.map_actors, self.reduce_actors, force)

    def start(self, input_partitions: int, bounds: dict[int, int] | None, serving: contextlib.ExitStack) -> None:
        """Start the reducers (and their query server), then the mappers, which join group APP together."""
        config, run = self.config, self.config.settings
        app = config.application_id
        ship_job_by_value(config.spec.job_cls)
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        n_mappers = run.mappers or max(1, min(input_partitions, cpus))
        # No CPU reserved (a worker waits on Kafka much of the time), and the cluster's nodes
        # taken in turn, the reducers', then the mappers'.
        options = {"num_cpus": 0, "max_restarts": ACTOR_RESTARTS, "max_task_retries": ACTOR_RESTARTS}
        nodes = across_nodes(run.reducers + n_mappers)
        self.reduce_actors = [
            ray.remote(ReduceWorker)
            .options(name=f"mrkafka:{app}:reducer:{k}", scheduling_strategy=nodes[k], **options)
            .remote(config, k)
            for k in range(run.reducers)
        ]
        if run.interactive_queries:
            serving.enter_context(QueryServer(app, run.state_dir, self.reduce_actors, run.query_timeout_s))
        self.map_actors = [
            ray.remote(MapWorker)
            .options(name=f"mrkafka:{app}:mapper:{i}", scheduling_strategy=nodes[run.reducers + i], **options)
            .remote(config, i)
            for i in range(n_mappers)
        ]
        get_result([a.ready.remote() for a in self.map_actors])  # then they join group APP together
        self.map_runs = [a.run.remote(bounds) for a in self.map_actors]
        self.reduce_runs = [a.run.remote() for a in self.reduce_actors]

    def finish(self, begin: dict[int, int], bounds: dict[int, int], committer: OutputCommitter | None) -> None:
        """A bounded run's end: once the mappers committed the input up to its bounds, stop them,
        and let each reducer commit what they wrote (and write its part, with ``committer``);
        on a terminal, with progress bars."""
        config = self.config
        with contextlib.closing(BoundedProgress(begin, bounds, self.reduce_actors)) as progress:
            _wait_for_mappers(self.kafka, config, begin, bounds, self.check, progress.committed)
            self.pull_metrics(force=True)
            _stop(self.map_actors, self.map_runs, self.counters, raise_errors=True)
            self.map_actors, self.map_runs = [], []
            # Every record the map tasks wrote, committed or not (see ReduceWorker.finish_at): the
            # last stable offset would stop short at a commit whose markers are not written yet.
            _, ends = self.kafka.topic_offsets(config.repartition_topic)
            if committer is None:
                _wait([a.finish_at.remote(ends[k]) for k, a in enumerate(self.reduce_actors)], self.check)
                return
            committer.setup(len(self.reduce_actors), index=config.spec.writes_index)
            parts = [
                a.write_part.remote(committer.task_path(part_name(k)), config.settings.fmt, ends[k], fs.filesystems())
                for k, a in enumerate(self.reduce_actors)
            ]
            for counters in _wait(parts, self.check, progress.writing(len(parts))):
                self.counters.update(counters)

    def stop(self, failed: bool, interrupted: bool, graceful: bool) -> None:
        """Stop every worker (``_stop``): gracefully unless not ``graceful``; their errors raised
        unless the run already ``failed``."""
        if graceful:
            self.pull_metrics(force=True)

        def stopped(actors: list, runs: list) -> bool:
            try:
                return _stop(actors, runs, self.counters, raise_errors=not failed, graceful=graceful)
            except MrkafkaError:
                if interrupted and not gcs_answers():  # a worker died with Ray's own processes, signalled too
                    return False
                raise

        answered = stopped(self.map_actors, self.map_runs)
        for histogram in _get_quietly([a.latency.remote() for a in self.reduce_actors] if graceful else []):
            self.latency.merge(histogram)
        answered &= stopped(self.reduce_actors, self.reduce_runs)
        if interrupted and graceful and not answered and not gcs_answers():
            print(
                "mrkafka: the stop reached Ray's own processes too (a signal to the whole process group): "
                "the workers' last values are missing from the report; what they committed stands",
                file=sys.stderr,
            )


def _check_state_dir(directory: Path) -> None:
    """Workers open their stores under ``directory``: a path they cannot use fails here, once."""
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise BadInputError(f"--state-dir {directory} cannot hold state stores: {exc.strerror or exc}") from exc


def _run_unbounded(
    kafka: _Kafka, config: StreamConfig, check: Callable[[], None], status_every_s: float | None
) -> None:
    """Until a worker fails, or Ctrl-C / SIGTERM; every ``status_every_s`` a status line on stderr."""
    last = (time.monotonic(), None)
    while True:
        time.sleep(_WAIT_S)
        check()
        if status_every_s is not None and time.monotonic() - last[0] >= status_every_s:
            last = print_status(kafka.admin, config, *last)


def _check_runs(runs: list) -> None:
    """A worker's run returns only when told to stop: an early end is its error."""
    if not runs:
        return
    done, _ = ray.wait(runs, num_returns=1, timeout=0)
    if done:
        get_result(done)
        raise MrkafkaError("a stream worker stopped by itself")


def _wait(refs: list, check: Callable[[], None], ready: Callable[[int], None] | None = None) -> list:
    """The results of ``refs``, once all are ready (told to ``ready`` as they come); the error
    of a worker's run that ends first."""
    pending = list(refs)
    while pending:
        _, pending = ray.wait(pending, num_returns=len(pending), timeout=_WAIT_S)
        check()
        if ready is not None:
            ready(len(refs) - len(pending))
    return get_result(refs)


def _stop(actors: list, runs: list, counters: Counters, raise_errors: bool, graceful: bool = True) -> bool:
    """Stop workers gracefully (their last commit), for at most ``STOP_TIMEOUT_S``; then kill them.

    A run that Ray started again on a restarted actor after ``stop`` would never end by
    itself: the timeout ends it. With ``raise_errors`` a run's error is raised after all
    stopped, else (the run already failed) it is dropped, never replacing the first error. Not
    ``graceful``: killed at once (under either guarantee a killed worker loses nothing it committed).
    Returns whether every run answered."""
    if not actors:
        return True
    if not graceful:
        for actor in actors:
            ray.kill(actor, no_restart=True)
        return True
    _get_quietly([a.stop.remote() for a in actors])
    ready = wait_ready(runs, STOP_TIMEOUT_S)
    error = None
    for ref in ready:
        try:
            counters.update(get_result(ref))
        except MrkafkaError as exc:
            error = error or exc
    for actor in actors:
        ray.kill(actor, no_restart=True)
    if error is not None and raise_errors:
        raise error
    return len(ready) == len(runs)


def _get_quietly(refs: list) -> list:
    """The results of ``refs`` that are ready within a few seconds (workers may be gone)."""
    ready = wait_ready(refs, 5.0)
    results = []
    for ref in ready:
        try:
            results.append(ray.get(ref))
        except Exception:  # a dead or failed worker: its own error is reported elsewhere
            continue
    return results


def _wait_for_mappers(
    kafka: _Kafka,
    config: StreamConfig,
    begin: dict[int, int],
    bounds: dict[int, int],
    check: Callable[[], None],
    progress: Callable[[dict[int, int]], None],
) -> None:
    """Until group APP committed every input partition up to its bound (each time told to ``progress``)."""
    while True:
        check()
        committed = kafka.committed_offsets(config.application_id, config.input_topic)
        progress(committed)
        if all(committed.get(p, begin[p]) >= bound for p, bound in bounds.items()):
            return
        time.sleep(_WAIT_S)
