"""The local runner: every task in this process, several splits mapped at once in threads.

Hadoop's LocalJobRunner runs ``mapreduce.local.map.tasks.maximum`` map tasks in threads of one
JVM; this runner does the same in one Python process. The map side's compiled kernels (numba's,
compiled ``nogil``, and Arrow's compute functions) release the GIL, so N threads keep up to N
cores busy where the inline runner keeps one, and no Ray starts.

Each thread has a map task of its own (a job instance may hold state). The partials reach the
reduce tasks in split order, as the inline runner hands them, so both give byte-identical
output whatever map finishes first; at most one split per thread is mapped ahead of the one
being reduced, which bounds the partials held (two a thread took the same time on real text
and 0.5 GB more memory on distinct keys). The reduce tasks write their parts in the same
threads.
"""

from __future__ import annotations

import collections
import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from mrkafka.batch.plan import available_cpus
from mrkafka.batch.tasks import MapTask, ReduceTask
from mrkafka.core.counters import Counters
from mrkafka.obs.progress import Progress

if TYPE_CHECKING:
    from mrkafka.batch.plan import BatchPlan
    from mrkafka.io.splits import Split

__all__ = ["run_local"]

#: Splits mapped ahead of the one being reduced, per thread.
AHEAD = 1


def run_local(plan: BatchPlan, progress: Progress, on_task: Callable[[Counters], None]) -> None:
    threads = plan.mappers or available_cpus()
    own = threading.local()

    def map_split(split: Split) -> tuple[Any, ...]:
        if not hasattr(own, "task"):
            own.task = MapTask(plan.spec, plan.reducers)
        if plan.map_only:
            return (own.task.run_map_only(split, plan.part_path(split.index), plan.fmt),)
        return own.task.run(split)

    reducers = [ReduceTask(plan.spec, k, plan.reduce_memory) for k in range(plan.reducers)]
    pool = ThreadPoolExecutor(threads, thread_name_prefix="mrkafka-task")
    try:
        splits = iter(plan.splits)
        mapping: collections.deque[tuple[Split, Future]] = collections.deque(
            (split, pool.submit(map_split, split)) for split in itertools.islice(splits, AHEAD * threads)
        )
        while mapping:
            split, future = mapping.popleft()
            counters, *partials = future.result()
            following = next(splits, None)
            if following is not None:
                mapping.append((following, pool.submit(map_split, following)))
            for reducer, partial in zip(reducers, partials):
                reducer.add(partial)
            on_task(counters)
            progress.advance(1, split.length)
        for counters in pool.map(lambda r: r.write(plan.part_path(r.index), plan.fmt), reducers):
            on_task(counters)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
