"""A batch run's plan: the job, its splits, and where its parts go."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from mrkafka.io import fs
from mrkafka.io.commit import part_name
from mrkafka.io.splits import Split
from mrkafka.job import JobSpec

__all__ = ["BatchPlan", "available_cpus"]


def available_cpus() -> int:
    """The CPUs this process may run on (a container's or ``taskset``'s share, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class BatchPlan:
    """What a runner executes: the job, its splits, and where parts go."""

    spec: JobSpec
    splits: Sequence[Split]
    reducers: int
    fmt: str
    temporary: str
    mappers: int | None = None
    ray_address: str | None = None
    #: Bytes of state a reduce task holds before it spills (``mrkafka.batch.spill``).
    reduce_memory: int | None = None
    #: The file systems of the inputs' and the output's URIs (``mrkafka.io.fs.filesystems``).
    filesystems: dict = field(default_factory=dict)

    @property
    def map_only(self) -> bool:
        return self.reducers == 0

    def part_path(self, index: int) -> str:
        return fs.join(self.temporary, part_name(index, self.map_only))
