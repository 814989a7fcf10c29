"""The Ray runner: map tasks and reduce tasks as Ray actors.

Map output travels as one Arrow table per reducer through Ray's object store. The driver
only moves object references: it keeps at most two splits per mapper in flight, and hands
partials to the reducers in split order, so that the merge order (and with it the output,
even of ``last`` or float sums) does not depend on which mapper finished first.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import ray

from mrkafka.batch.tasks import MapTask, ReduceTask
from mrkafka.output import Counters
from mrkafka.progress import Progress
from mrkafka.ray_support import get_result, ray_session, ship_job_by_value

if TYPE_CHECKING:
    from mrkafka.batch import BatchPlan

__all__ = ["run_ray"]

SPLITS_IN_FLIGHT_PER_MAPPER = 2


def run_ray(plan: BatchPlan, progress: Progress) -> Counters:
    with ray_session(plan.ray_address):
        ship_job_by_value(plan.spec.job_cls)
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        n_mappers = max(1, min(plan.mappers or cpus, len(plan.splits)))
        mapper_cls = ray.remote(MapTask).options(num_cpus=min(1.0, cpus / n_mappers))
        mappers = [mapper_cls.remote(plan.spec, plan.num_reducers) for _ in range(n_mappers)]
        reducers = [ray.remote(ReduceTask).options(num_cpus=0).remote(plan.spec, k) for k in range(plan.num_reducers)]
        try:
            return _drive(plan, mappers, reducers, progress)
        finally:
            for actor in mappers + reducers:
                ray.kill(actor)


def _drive(plan: BatchPlan, mappers: list, reducers: list, progress: Progress) -> Counters:
    counters = Counters()
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
                done, *partials = mappers[m].run.options(num_returns=plan.num_reducers + 1).remote(split)
            running[done] = (split, m, partials)
            load[m] += 1
        ready, _ = ray.wait(list(running), num_returns=1)
        for ref in ready:
            split, m, partials = running.pop(ref)
            load[m] -= 1
            counters.update(get_result(ref))
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
    for reducer_counters in get_result([r.write.remote(plan.part_path(k), plan.fmt) for k, r in enumerate(reducers)]):
        counters.update(reducer_counters)
    return counters
