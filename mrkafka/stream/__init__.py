"""The stream engine: a job as a Kafka Streams-style aggregation, on Ray actors.

    input topic --group APP--> map workers --murmur2--> APP-repartition (R partitions)
        --> R reduce workers: state store + APP-STORE-changelog (compacted) --> output topic

``run_stream`` creates the internal topics, starts the workers as Ray actors (restarted by
Ray if their process dies; they resume from committed offsets and restored state), and runs
until stopped (Ctrl-C, SIGTERM: flush, commit, exit 0) or, with ``until_end``, up to the
input's end offsets taken at start; then ``output`` gets the final state in the batch layout.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import ray

from mrkafka import output as out
from mrkafka.batch.ray_runner import get_result, ray_session, ship_job_by_value
from mrkafka.batch.tasks import JobSpec
from mrkafka.errors import BadInputError, KafkaUnavailableError
from mrkafka.kafka import admin
from mrkafka.output import Counters, OutputCommitter, part_name
from mrkafka.stream.tasks import MapWorker, ReduceWorker, StreamConfig

__all__ = ["StreamConfig", "StreamReport", "run_stream"]

ACTOR_RESTARTS = 3
_WAIT_S = 0.25


@dataclass(frozen=True)
class StreamReport:
    counters: Counters
    seconds: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None

    def format(self) -> str:
        records_in = self.counters.get(out.MAP_INPUT_RECORDS)
        read = self.counters.get(out.BYTES_READ)
        rate = f"{read / 1e6 / max(self.seconds, 1e-9):.1f} MB/s, {records_in / max(self.seconds, 1e-9):,.0f} records/s"
        latency = (
            f"latency p50 {self.latency_p50_ms:.0f} ms, p99 {self.latency_p99_ms:.0f} ms"
            if self.latency_p50_ms is not None
            else "no output"
        )
        return (
            f"records in {records_in:,}, records out {self.counters.get(out.REDUCE_OUTPUT_RECORDS):,}, "
            f"{self.seconds:.2f} s ({rate}); {latency}"
        )


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a run as Ctrl-C does: gracefully."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _prepare_internal_topics(config: StreamConfig) -> None:
    """Internal topics need exactly R partitions: another count would misroute keys."""
    bootstrap = config.bootstrap
    admin.ensure_topic(bootstrap, config.repartition_topic, config.reducers, {"cleanup.policy": "delete"})
    admin.ensure_topic(bootstrap, config.changelog_topic, config.reducers, {"cleanup.policy": "compact"})


def run_stream(
    spec: JobSpec,
    *,
    bootstrap: str,
    input_topic: str,
    output_topic: str,
    application_id: str | None = None,
    reducers: int = 2,
    mappers: int | None = None,
    commit_interval_ms: int = 1000,
    state: str = "memory",
    state_dir: str = "~/.cache/mrkafka/state",
    until_end: bool = False,
    output: str | Path | None = None,
    fmt: str = "text",
    overwrite: bool = False,
    ray_address: str | None = None,
) -> StreamReport:
    """Run ``spec``'s job over ``input_topic`` into ``output_topic``; see the module docstring."""

    if reducers < 1:
        raise BadInputError(f"a stream run needs --reducers 1 or more, got {reducers}")
    if output is not None and not until_end:
        raise BadInputError("--output needs --until-end: an unbounded stream has no final state to write")
    app = application_id or spec.name
    input_partitions = len(admin.describe_topic(bootstrap, input_topic).partitions)  # a clear error if missing
    # The output topic may have any partition count; a missing one is created with R.
    admin.ensure_topic(bootstrap, output_topic, reducers, spec.job_cls.output_topic_configs, exact=False)
    output_partitions = len(admin.describe_topic(bootstrap, output_topic).partitions)
    config = StreamConfig(spec, app, bootstrap, input_topic, output_topic, reducers, output_partitions,
                          commit_interval_ms, state, state_dir)  # fmt: skip
    _prepare_internal_topics(config)
    committer = OutputCommitter(output, overwrite) if output is not None else None
    bounds = None
    if until_end:
        begin, bounds = admin.topic_offsets(bootstrap, input_topic)

    started = time.monotonic()
    with ray_session(ray_address), _sigterm_as_interrupt():
        ship_job_by_value(spec.job_cls)
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        n_mappers = mappers or max(1, min(input_partitions, cpus))
        options = {"num_cpus": 0, "max_restarts": ACTOR_RESTARTS, "max_task_retries": ACTOR_RESTARTS}
        reduce_actors = [
            ray.remote(ReduceWorker).options(name=f"mrkafka:{app}:reducer:{k}", **options).remote(config, k)
            for k in range(reducers)
        ]
        map_actors = [
            ray.remote(MapWorker).options(name=f"mrkafka:{app}:mapper:{i}", **options).remote(config)
            for i in range(n_mappers)
        ]
        counters = Counters()
        interrupted = False
        reduce_runs = [a.run.remote() for a in reduce_actors]
        map_runs = [a.run.remote(bounds) for a in map_actors]
        try:
            if bounds is None:
                while True:
                    _check_early_exit(map_runs + reduce_runs)
            else:
                _wait_for_mappers(config, begin, bounds, map_runs + reduce_runs)
                get_result([a.stop.remote() for a in map_actors])
                for c in get_result(map_runs):
                    counters.update(c)
                map_runs = []
                _, repartition_ends = admin.topic_offsets(bootstrap, config.repartition_topic)
                get_result([a.finish_at.remote(repartition_ends[k]) for k, a in enumerate(reduce_actors)])
                if committer is not None:
                    committer.setup()
                    paths = [committer.task_path(part_name(k)) for k in range(reducers)]
                    for c in get_result([a.write_part.remote(p, fmt) for a, p in zip(reduce_actors, paths)]):
                        counters.update(c)
        except KeyboardInterrupt:
            interrupted = True  # stop gracefully below
        except BaseException:
            if committer is not None:
                committer.abort()
            raise
        finally:
            get_result([a.stop.remote() for a in map_actors])
            for c in get_result(map_runs):
                counters.update(c)
            get_result([a.stop.remote() for a in reduce_actors])
            for c in get_result(reduce_runs):
                counters.update(c)
            latencies = np.concatenate(get_result([a.latency_samples.remote() for a in reduce_actors]))
            for actor in map_actors + reduce_actors:
                ray.kill(actor)
    seconds = time.monotonic() - started
    if committer is not None and interrupted:
        committer.abort()  # a bounded run stopped early has no final state; what it did is committed in Kafka
    elif committer is not None:
        committer.commit(counters)
    p50, p99 = np.percentile(latencies, [50, 99]).tolist() if len(latencies) else (None, None)
    return StreamReport(counters, seconds, p50, p99)


def _check_early_exit(runs: list) -> None:
    """A worker's run returns only when told to stop: an early return is its error."""
    done, _ = ray.wait(runs, num_returns=1, timeout=_WAIT_S)
    if done:
        get_result(done)
        raise RuntimeError("a stream worker stopped by itself")


def _wait_for_mappers(config: StreamConfig, begin: dict[int, int], bounds: dict[int, int], runs: list) -> None:
    """Until group APP committed every input partition up to its bound.

    A broker that is away is waited for: the workers retry, and fail the run (which ends this
    wait) if it does not come back in their timeouts.
    """
    backoff = _WAIT_S
    while True:
        _check_early_exit(runs)
        try:
            committed = admin.committed_offsets(config.bootstrap, config.application_id, config.input_topic)
        except KafkaUnavailableError:
            time.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
            continue
        backoff = _WAIT_S
        if all(committed.get(p, begin[p]) >= bound for p, bound in bounds.items()):
            return
