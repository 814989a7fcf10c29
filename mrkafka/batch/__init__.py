"""The batch engine: splits -> map tasks -> murmur2 shuffle -> reduce tasks -> part files.

``run_batch`` plans the splits, runs them on a runner picked by name (``inline``: one
process, no Ray; ``ray``: actors on a local or remote Ray cluster) and commits the output.
Both runners give byte-identical output.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mrkafka.counters import MAP_MILLIS, MAP_TASKS, REDUCE_MILLIS, Counters, Report
from mrkafka.errors import BadInputError, Interrupted
from mrkafka.job import JobSpec
from mrkafka.metrics import Figures, RunMetrics, with_counters
from mrkafka.output import OutputCommitter, part_name
from mrkafka.progress import Progress
from mrkafka.settings import BatchSettings
from mrkafka.splits import Split, expand_inputs, plan_splits

__all__ = ["MAX_SPLITS", "RUNNERS", "BatchPlan", "run_batch"]

#: A plan of more splits is refused: each costs a task, and so many only come from a tiny block size.
MAX_SPLITS = 100_000


@dataclass(frozen=True)
class BatchPlan:
    """What a runner executes: the job, its splits, and where parts go."""

    spec: JobSpec
    splits: Sequence[Split]
    num_reducers: int
    fmt: str
    temporary: Path
    mappers: int | None = None
    ray_address: str | None = None

    @property
    def map_only(self) -> bool:
        return self.num_reducers == 0

    def part_path(self, index: int) -> str:
        return str(self.temporary / part_name(index, self.map_only))


def _run_inline(plan: BatchPlan, progress: Progress, on_task: Callable[[Counters], None]) -> None:
    from mrkafka.batch.inline import run_inline

    run_inline(plan, progress, on_task)


def _run_ray(plan: BatchPlan, progress: Progress, on_task: Callable[[Counters], None]) -> None:
    from mrkafka.batch.ray_runner import run_ray

    run_ray(plan, progress, on_task)


#: name -> runner(plan, progress, on_task): it runs the plan's tasks and hands each task's
#: counters to ``on_task`` as the task ends.
RUNNERS: dict[str, Callable[[BatchPlan, Progress, Callable[[Counters], None]], None]] = {
    "inline": _run_inline,
    "ray": _run_ray,
}


def run_batch(
    spec: JobSpec, inputs: Sequence[str], output: str | Path, *, progress: bool | None = None, **settings: Any
) -> Report:
    """Run a batch job over ``inputs`` into ``output``; ``settings`` are the other fields of
    ``BatchSettings`` (``reducers``, ``runner``, ...). ``progress``: draw a progress bar
    (default: when stderr is a terminal)."""
    started = time.monotonic()
    run = BatchSettings(inputs=tuple(inputs), output=output, **settings)
    files = expand_inputs(run.inputs)
    planned = sum(os.path.getsize(f) for f in files) // run.block_size
    if planned > MAX_SPLITS:
        raise BadInputError(
            f"--block-size {run.block_size} would cut the input into about {planned:,} splits (at most "
            f"{MAX_SPLITS:,}): use a larger block size"
        )
    committer = OutputCommitter(output, run.overwrite, files)
    splits = plan_splits(files, run.block_size)
    plan = BatchPlan(spec, splits, run.reducers, run.fmt, committer.temporary, run.mappers, run.ray_address)
    metrics = _metrics(spec, run, len(splits))
    counters = Counters()

    def task_ended(task_counters: Counters) -> None:
        counters.update(task_counters)
        if metrics is not None:
            metrics.task(task_counters)

    committer.setup()
    try:
        with Progress(len(splits), "splits", progress) as bar:
            RUNNERS[run.runner](plan, bar, task_ended)
        committer.commit(counters)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM (see mrkafka.cli)
        committer.abort()
        raise Interrupted(f"interrupted: no output was written ({output} holds what it held before)") from exc
    except BaseException:
        committer.abort()
        raise
    finally:
        if metrics is not None:
            metrics.close()
    return Report(spec.name, counters, time.monotonic() - started, str(output))


class _BatchMetrics:
    """A batch run's metrics (``mrkafka.metrics``): its splits, and each task's counters and time."""

    def __init__(self, metrics: RunMetrics, splits: int) -> None:
        self.metrics, self.name = metrics, metrics.application
        metrics.set("mrkafka_splits", splits, application=self.name)

    def task(self, counters: Counters) -> None:
        metrics, name = self.metrics, self.name
        if counters.get(MAP_TASKS):
            metrics.inc("mrkafka_splits_done_total", application=name)
            metrics.observe("mrkafka_task_duration_seconds", counters.get(MAP_MILLIS) / 1000, application=name,
                            kind="map")  # fmt: skip
        else:
            metrics.observe("mrkafka_task_duration_seconds", counters.get(REDUCE_MILLIS) / 1000, application=name,
                            kind="reduce")  # fmt: skip
        metrics.add(with_counters(Figures(), counters, name))

    def close(self) -> None:
        self.metrics.close()


def _metrics(spec: JobSpec, run: BatchSettings, splits: int) -> _BatchMetrics | None:
    if run.metrics_port is None and run.metrics_file is None:
        return None
    settings = {"mode": "batch", "job": spec.name, "runner": run.runner, "reducers": run.reducers,
                "block_size": run.block_size}  # fmt: skip
    metrics = RunMetrics(spec.name, settings, run.metrics_port, run.metrics_file)
    return _BatchMetrics(metrics, splits)
