"""The inline runner: every task in this process, one split at a time. For debugging,
small inputs and fast tests; the job's own exception is the cause of the error it raises."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from mrkafka.batch.tasks import MapTask, ReduceTask
from mrkafka.core.counters import Counters
from mrkafka.obs.progress import Progress

if TYPE_CHECKING:
    from mrkafka.batch.plan import BatchPlan

__all__ = ["run_inline"]


def run_inline(plan: BatchPlan, progress: Progress, on_task: Callable[[Counters], None]) -> None:
    mapper = MapTask(plan.spec, plan.reducers)
    reducers = [ReduceTask(plan.spec, k, plan.reduce_memory) for k in range(plan.reducers)]
    for split in plan.splits:
        if plan.map_only:
            split_counters = mapper.run_map_only(split, plan.part_path(split.index), plan.fmt)
        else:
            split_counters, *partials = mapper.run(split)
            for reducer, partial in zip(reducers, partials):
                reducer.add(partial)
        on_task(split_counters)
        progress.advance(1, split.length)
    for reducer in reducers:
        on_task(reducer.write(plan.part_path(reducer.index), plan.fmt))
