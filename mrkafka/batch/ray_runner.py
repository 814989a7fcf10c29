"""The Ray runner: map tasks and reduce tasks as Ray actors.

Reducer actors are processes, so R reduce partitions share at most two actors per CPU
(actor g owns partitions g, g + actors, ...). Map output travels as one list of Arrow tables
per reducer actor through Ray's object store. The driver
only moves object references: it keeps at most two splits per mapper in flight, and hands
partials to the reducers in split order, so that the merge order (and with it the output,
even of ``last`` or float sums) does not depend on which mapper finished first.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import ray

from mrkafka.batch.tasks import MapTask, ReduceTask
from mrkafka.cluster.ray_support import across_nodes, get_result, ray_session, ship_job_by_value
from mrkafka.core.counters import Counters
from mrkafka.io import fs
from mrkafka.job import JobSpec
from mrkafka.obs.progress import Progress

if TYPE_CHECKING:
    from mrkafka.batch.plan import BatchPlan

__all__ = ["run_ray"]

SPLITS_IN_FLIGHT_PER_MAPPER = 2
#: Reducer actors per CPU: each is a process, so R reducers share at most this many per CPU
#: (actor g owns the reduce partitions k with k % actors == g).
REDUCER_ACTORS_PER_CPU = 2


class Mapper(MapTask):
    """A map task in an actor, which opens the inputs' and the output's file systems as the driver
    configured them (``mrkafka.io.fs.filesystems``)."""

    def __init__(self, spec: JobSpec, reducers: int, filesystems: Mapping[str, Any]) -> None:
        fs.use(filesystems)
        super().__init__(spec, reducers)


class ReduceGroup:
    """The reduce tasks of several partitions in one actor (partitions ``first``, ``first + step``, ...)."""

    def __init__(
        self, spec: JobSpec, first: int, reducers: int, step: int, memory: int | None, filesystems: Mapping[str, Any]
    ) -> None:
        fs.use(filesystems)
        self.tasks = [ReduceTask(spec, k, memory) for k in range(first, reducers, step)]

    def add(self, partials: list) -> None:
        for task, partial in zip(self.tasks, partials):
            task.add(partial)

    def write(self, paths: list[str], fmt: str) -> list[Counters]:
        """Each task's part file; their counters, one per task."""
        return [task.write(path, fmt) for task, path in zip(self.tasks, paths)]


def run_ray(plan: BatchPlan, progress: Progress, on_task: Callable[[Counters], None]) -> None:
    with ray_session(plan.ray_address):
        ship_job_by_value(plan.spec.job_cls)
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        n_mappers = max(1, min(plan.mappers or cpus, len(plan.splits)))
        # Mappers are spread over the nodes by their CPU share; reducers reserve no CPU (they
        # wait on the mappers much of the time) and go to the nodes in turn.
        mapper_cls = ray.remote(Mapper).options(num_cpus=min(1.0, cpus / n_mappers), scheduling_strategy="SPREAD")
        mappers = [mapper_cls.remote(plan.spec, plan.reducers, plan.filesystems) for _ in range(n_mappers)]
        n_groups = min(plan.reducers, REDUCER_ACTORS_PER_CPU * cpus)
        group_cls = ray.remote(ReduceGroup)
        reducers = [
            group_cls.options(num_cpus=0, scheduling_strategy=where).remote(
                plan.spec, g, plan.reducers, n_groups, plan.reduce_memory, plan.filesystems
            )
            for g, where in enumerate(across_nodes(n_groups))
        ]
        try:
            _drive(plan, mappers, reducers, progress, on_task)
        finally:
            for actor in mappers + reducers:
                ray.kill(actor)


def _drive(
    plan: BatchPlan, mappers: list, reducers: list, progress: Progress, on_task: Callable[[Counters], None]
) -> None:
    max_in_flight = SPLITS_IN_FLIGHT_PER_MAPPER * len(mappers)
    queue = deque(plan.splits)
    load = [0] * len(mappers)
    running: dict[Any, tuple[Any, int, list]] = {}
    mapped: dict[int, list] = {}  # split index -> its partials, waiting for earlier splits
    merging: deque[list] = deque()  # reducers' add() calls, oldest first
    next_to_merge = 0
    while queue or running:
        while queue and len(running) < max_in_flight:
            split = queue.popleft()
            m = load.index(min(load))
            if plan.map_only:
                done = mappers[m].run_map_only.remote(split, plan.part_path(split.index), plan.fmt)
                partials: list = []
            else:
                done, *partials = (
                    mappers[m].run_grouped.options(num_returns=len(reducers) + 1).remote(split, len(reducers))
                )
            running[done] = (split, m, partials)
            load[m] += 1
        ready, _ = ray.wait(list(running), num_returns=1)
        for ref in ready:
            split, m, partials = running.pop(ref)
            load[m] -= 1
            on_task(get_result(ref))
            mapped[split.index] = partials
            progress.advance(1, split.length)
        while next_to_merge in mapped:
            partials = mapped.pop(next_to_merge)
            merging.append([r.add.remote(p) for r, p in zip(reducers, partials)])
            next_to_merge += 1
        while len(merging) > max_in_flight:
            get_result(merging.popleft())
    for adds in merging:
        get_result(adds)
    n = len(reducers)
    writes = [
        r.write.remote([plan.part_path(k) for k in range(g, plan.reducers, n)], plan.fmt)
        for g, r in enumerate(reducers)
    ]
    for group_counters in get_result(writes):
        for reducer_counters in group_counters:
            on_task(reducer_counters)
