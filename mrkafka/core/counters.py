"""Hadoop's counters.

Map and reduce tasks count into ``Counters`` under Hadoop's group and counter names; the
counters of every task add up into the run's, which both engines write to
``_COUNTERS.json`` and return in a ``Report`` (``mrkafka.core.report``).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "BYTES_READ",
    "BYTES_WRITTEN",
    "COMBINE_INPUT_RECORDS",
    "COMBINE_OUTPUT_RECORDS",
    "MAP_INPUT_RECORDS",
    "MAP_MILLIS",
    "MAP_OUTPUT_RECORDS",
    "MAP_TASKS",
    "REDUCE_INPUT_GROUPS",
    "REDUCE_INPUT_RECORDS",
    "REDUCE_MILLIS",
    "REDUCE_OUTPUT_RECORDS",
    "REDUCE_TASKS",
    "RETRIES",
    "SPILLED_BYTES",
    "SPILLED_RECORDS",
    "Counters",
]

log = logging.getLogger(__name__)

# Hadoop's counter groups and names.
FRAMEWORK = "Map-Reduce Framework"
JOB = "Job Counters"
FILE_INPUT = "File Input Format Counters"
FILE_OUTPUT = "File Output Format Counters"
#: A stream worker's sessions started again after an error, by error class.
RETRIES = "Stream retries"
MAP_INPUT_RECORDS = (FRAMEWORK, "Map input records")
MAP_OUTPUT_RECORDS = (FRAMEWORK, "Map output records")
COMBINE_INPUT_RECORDS = (FRAMEWORK, "Combine input records")
COMBINE_OUTPUT_RECORDS = (FRAMEWORK, "Combine output records")
REDUCE_INPUT_GROUPS = (FRAMEWORK, "Reduce input groups")
REDUCE_INPUT_RECORDS = (FRAMEWORK, "Reduce input records")
REDUCE_OUTPUT_RECORDS = (FRAMEWORK, "Reduce output records")
SPILLED_RECORDS = (FRAMEWORK, "Spilled Records")
SPILLED_BYTES = (FRAMEWORK, "Spilled bytes")
MAP_TASKS = (JOB, "Launched map tasks")
REDUCE_TASKS = (JOB, "Launched reduce tasks")
MAP_MILLIS = (JOB, "Total time spent by all map tasks (ms)")
REDUCE_MILLIS = (JOB, "Total time spent by all reduce tasks (ms)")
BYTES_READ = (FILE_INPUT, "Bytes Read")
BYTES_WRITTEN = (FILE_OUTPUT, "Bytes Written")
_HADOOP_GROUPS = frozenset({FRAMEWORK, JOB, FILE_INPUT, FILE_OUTPUT})


@functools.cache
def _warn_once(message: str) -> None:
    log.warning(message)


class Counters:
    """Counters by group and name, as Hadoop reports them; tasks' counters add up."""

    def __init__(self, values: Mapping[str, Mapping[str, int]] | None = None) -> None:
        self._groups: dict[str, dict[str, int]] = {}
        for group, names in (values or {}).items():
            for name, amount in names.items():
                self.add((group, name), amount)

    def add(self, counter: tuple[str, str], amount: int = 1) -> None:
        group, name = counter
        names = self._groups.setdefault(group, {})
        names[name] = names.get(name, 0) + amount

    def get(self, counter: tuple[str, str]) -> int:
        group, name = counter
        return self._groups.get(group, {}).get(name, 0)

    def update(self, other: Counters | Iterable[tuple[tuple[str, str], int]]) -> None:
        items = other.items() if isinstance(other, Counters) else other
        for counter, amount in items:
            self.add(counter, amount)

    def take_job_counters(self, job_name: str, job: Any) -> None:
        """Add what the job counted (``Job.increment_counter``), under the job's name, and
        clear the job's own: a task's job lives on from task to task."""
        self.update(((job_name, name), n) for name, n in job.counters.items())
        job.counters.clear()

    def items(self) -> list[tuple[tuple[str, str], int]]:
        # Copies taken at once: a worker's thread may add a counter while its loop reads them.
        return [((g, n), v) for g, names in list(self._groups.items()) for n, v in list(names.items())]

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {group: dict(names) for group, names in self._groups.items()}

    def minus(self, other: Counters) -> Counters:
        """These counters less ``other``'s (what was counted since ``other`` was taken)."""
        difference = Counters(self.as_dict())
        difference.update((counter, -amount) for counter, amount in other.items())
        return difference

    def to_text(self, limit: int) -> str:
        """The counters as compact JSON of at most ``limit`` characters, for a place of bounded
        size (a committed offset's metadata: 4096 bytes by default). Should the job's own counters
        not fit, Hadoop's groups alone are kept, with a warning."""
        text = json.dumps(self._groups, separators=(",", ":"), ensure_ascii=True)
        if len(text) > limit:
            _warn_once(f"the job's counters take more than {limit} bytes: only Hadoop's are kept across commits")
            own = {g: names for g, names in self._groups.items() if g in _HADOOP_GROUPS}
            text = json.dumps(own, separators=(",", ":"), ensure_ascii=True)
        return text

    @classmethod
    def from_text(cls, text: str | None) -> Counters:
        """Counters from ``to_text``; none from text that is empty or not what ``to_text`` writes."""
        try:
            groups = json.loads(text) if text else {}
        except ValueError:
            return cls()
        valid = isinstance(groups, dict) and all(
            isinstance(names, dict) and all(type(value) is int for value in names.values()) for names in groups.values()
        )
        return cls(groups) if valid else cls()

    def format(self) -> str:
        """A short table, Hadoop-style: groups, then indented ``name=value`` lines."""
        lines = [f"Counters: {sum(len(n) for n in self._groups.values())}"]
        for group, names in self._groups.items():
            lines.append(f"\t{group}")
            lines.extend(f"\t\t{name}={value}" for name, value in names.items())
        return "\n".join(lines)
