"""``run_batch``: plan the splits, run them on the runner the settings name, commit the output."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable

from mrkafka.batch.plan import BatchPlan, available_cpus
from mrkafka.batch.spill import fair_share
from mrkafka.core.counters import MAP_MILLIS, MAP_TASKS, REDUCE_MILLIS, Counters
from mrkafka.core.report import Report
from mrkafka.errors import Interrupted, WorkerLost
from mrkafka.io import fs
from mrkafka.io.commit import OutputCommitter
from mrkafka.io.splits import expand_inputs, plan_splits
from mrkafka.job import JobSpec
from mrkafka.obs.metrics import MetricValues, RunMetrics, with_counters
from mrkafka.obs.progress import Progress
from mrkafka.settings import BatchSettings

__all__ = ["run_batch"]

#: What a runner is: it runs the plan's tasks, and hands each task's counters to the callback as the task ends.
Runner = Callable[[BatchPlan, Progress, Callable[[Counters], None]], None]


def _runner(name: str) -> Runner:
    """The runner named ``name`` (``mrkafka.settings.RUNNERS``); the ray runner imports Ray only when picked."""
    if name == "inline":
        from mrkafka.batch.inline import run_inline

        return run_inline
    if name == "local":
        from mrkafka.batch.local import run_local

        return run_local
    from mrkafka.batch.ray_runner import run_ray

    return run_ray


def run_batch(spec: JobSpec, settings: BatchSettings, *, progress: bool | None = None) -> Report:
    """Run a batch job as ``settings`` say; ``progress``: draw a progress bar (default: when
    stderr is a terminal)."""
    started = time.monotonic()
    spec = dataclasses.replace(spec, map_only=settings.reducers == 0)
    files = expand_inputs(settings.inputs)
    committer = OutputCommitter(settings.output, settings.overwrite, files)
    # The same plan whatever the runner (so the same output): small files combined for the
    # mappers asked for, or as many as this machine runs at once.
    splits = plan_splits(files, settings.block_size, settings.mappers or available_cpus())
    reduce_memory = settings.reduce_memory or fair_share(settings.reducers)
    plan = BatchPlan(
        spec,
        splits,
        settings.reducers,
        settings.fmt,
        committer.temporary,
        settings.mappers,
        settings.ray_address,
        reduce_memory,
        fs.filesystems(),
    )
    metrics = _metrics(spec, settings, len(splits))
    committer.setup(plan.reducers or len(splits), map_only=plan.map_only, index=spec.writes_index)
    try:
        counters = _attempts(plan, settings.runner, progress, metrics)
        committer.commit(counters)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM (see mrkafka.cli)
        committer.abort()
        raise Interrupted(f"interrupted: no output was written ({settings.output} holds what it held before)") from exc
    except BaseException:
        committer.abort()
        raise
    finally:
        if metrics is not None:
            metrics.close()
    return Report(spec.name, counters, time.monotonic() - started, committer.path)


#: How many times a run's tasks are attempted when a task's process dies (Hadoop's
#: ``mapreduce.map.maxattempts``): a Ray node lost, a worker killed.
ATTEMPTS = 4


def _attempts(plan: BatchPlan, runner: str, progress: bool | None, metrics: _BatchMetrics | None) -> Counters:
    """Run the plan's tasks, all of them again when a task's process died (the partials a
    reducer had merged died with it), up to ``ATTEMPTS`` times; the counters of the attempt
    that succeeded, as Hadoop counts only successful task attempts."""
    attempt = 1
    while True:
        counters = Counters()

        def task_ended(task_counters: Counters, counters: Counters = counters) -> None:
            counters.update(task_counters)
            if metrics is not None:
                metrics.task(task_counters)

        try:
            with Progress(len(plan.splits), "splits", progress) as bar:
                _runner(runner)(plan, bar, task_ended)
            return counters
        except WorkerLost as exc:
            if attempt == ATTEMPTS:
                raise
            why = next((line.strip() for line in str(exc).splitlines() if "died because" in line), str(exc))
            attempt += 1
            print(f"mrkafka: {why} Running the tasks again (attempt {attempt} of {ATTEMPTS}).", file=sys.stderr)


class _BatchMetrics:
    """A batch run's metrics (``mrkafka.obs.metrics``): its splits, and each task's counters and time."""

    def __init__(self, metrics: RunMetrics, splits: int) -> None:
        self.metrics, self.name = metrics, metrics.application
        metrics.set("mrkafka_splits", splits, application=self.name)

    def task(self, counters: Counters) -> None:
        metrics, name = self.metrics, self.name
        if counters.get(MAP_TASKS):
            metrics.inc("mrkafka_splits_done_total", application=name)
            metrics.observe(
                "mrkafka_task_duration_seconds", counters.get(MAP_MILLIS) / 1000, application=name, role="map"
            )
        else:
            metrics.observe(
                "mrkafka_task_duration_seconds", counters.get(REDUCE_MILLIS) / 1000, application=name, role="reduce"
            )
        metrics.add(with_counters(MetricValues(application=name), counters))

    def close(self) -> None:
        self.metrics.close()


def _metrics(spec: JobSpec, run: BatchSettings, splits: int) -> _BatchMetrics | None:
    if run.metrics_port is None and run.metrics_file is None:
        return None
    settings = {
        "mode": "batch",
        "job": spec.name,
        "runner": run.runner,
        "reducers": run.reducers,
        "block_size": run.block_size,
    }
    metrics = RunMetrics(spec.name, settings, run.metrics_port, run.metrics_file, run.metrics_address)
    return _BatchMetrics(metrics, splits)
