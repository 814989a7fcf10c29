"""Hadoop's counters, and the report a run ends with.

Map and reduce tasks count into ``Counters`` under Hadoop's group and counter names; the
counters of every task add up into the run's, which both engines write to
``_COUNTERS.json`` and return in a ``Report``, the one thing the command line prints.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mrkafka import progress

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
    "Counters",
    "Report",
]

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
MAP_TASKS = (JOB, "Launched map tasks")
REDUCE_TASKS = (JOB, "Launched reduce tasks")
MAP_MILLIS = (JOB, "Total time spent by all map tasks (ms)")
REDUCE_MILLIS = (JOB, "Total time spent by all reduce tasks (ms)")
BYTES_READ = (FILE_INPUT, "Bytes Read")
BYTES_WRITTEN = (FILE_OUTPUT, "Bytes Written")


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

    def items(self) -> list[tuple[tuple[str, str], int]]:
        # Copies taken at once: a worker's thread may add a counter while its loop reads them.
        return [((g, n), v) for g, names in list(self._groups.items()) for n, v in list(names.items())]

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {group: dict(names) for group, names in self._groups.items()}

    def format(self) -> str:
        """A short table, Hadoop-style: groups, then indented ``name=value`` lines."""
        lines = [f"Counters: {sum(len(n) for n in self._groups.values())}"]
        for group, names in self._groups.items():
            lines.append(f"\t{group}")
            lines.extend(f"\t\t{name}={value}" for name, value in names.items())
        return "\n".join(lines)


@dataclass(frozen=True)
class Report:
    """What a run did: its counters, its wall time, and in stream mode the end-to-end latency
    (input record timestamp to output write)."""

    name: str
    counters: Counters
    seconds: float
    destination: str = ""
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None

    def format(self) -> str:
        """``wordcount: records in 3, records out 12, 96 B in 0.52 s (185 B/s, 6 records/s) -> out``,
        then the latency where there is one."""
        records_in = self.counters.get(MAP_INPUT_RECORDS)
        read = self.counters.get(BYTES_READ)
        seconds = max(self.seconds, 1e-9)
        line = (
            f"{self.name}: records in {records_in:,}, records out {self.counters.get(REDUCE_OUTPUT_RECORDS):,}, "
            f"{progress.amount(read)} in {self.seconds:.2f} s "
            f"({progress.rate(read, seconds)}, {records_in / seconds:,.0f} records/s)"
        )
        if self.destination:
            line += f" -> {self.destination}"
        if self.latency_p50_ms is not None and self.latency_p99_ms is not None:
            line += f"; latency p50 {self.latency_p50_ms:.0f} ms, p99 {self.latency_p99_ms:.0f} ms"
        return line
