"""A batch run's plan: the job, its splits, and where its parts go."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mrkafka.io.commit import part_name
from mrkafka.io.splits import Split
from mrkafka.job import JobSpec

__all__ = ["BatchPlan"]


@dataclass(frozen=True)
class BatchPlan:
    """What a runner executes: the job, its splits, and where parts go."""

    spec: JobSpec
    splits: Sequence[Split]
    reducers: int
    fmt: str
    temporary: Path
    mappers: int | None = None
    ray_address: str | None = None

    @property
    def map_only(self) -> bool:
        return self.reducers == 0

    def part_path(self, index: int) -> str:
        return str(self.temporary / part_name(index, self.map_only))
