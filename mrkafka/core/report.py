"""The report a run ends with, and how amounts and rates read.

A ``Report`` is the one thing the command line prints of a run: its counters, its wall time,
and in stream mode the end-to-end latency.
"""

from __future__ import annotations

from dataclasses import dataclass

from mrkafka.core.counters import (
    BYTES_READ,
    MAP_INPUT_RECORDS,
    MAP_OUTPUT_RECORDS,
    MAP_TASKS,
    REDUCE_OUTPUT_RECORDS,
    REDUCE_TASKS,
    Counters,
)

__all__ = ["Report", "amount", "rate"]


def amount(nbytes: float) -> str:
    """``3.2 MB``, ``512.0 KB`` or ``12 B``: decimal units, so that small inputs do not read 0.0 MB."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if nbytes >= size:
            return f"{nbytes / size:.1f} {unit}"
    return f"{nbytes:.0f} B"


def rate(nbytes: float, seconds: float) -> str:
    return f"{amount(nbytes / max(seconds, 1e-9))}/s"


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
        # A map-only run's output is its map output; any other run's, its reducers'.
        map_only = self.counters.get(MAP_TASKS) and not self.counters.get(REDUCE_TASKS)
        records_out = self.counters.get(MAP_OUTPUT_RECORDS if map_only else REDUCE_OUTPUT_RECORDS)
        read = self.counters.get(BYTES_READ)
        seconds = max(self.seconds, 1e-9)
        line = (
            f"{self.name}: records in {records_in:,}, records out {records_out:,}, "
            f"{amount(read)} in {self.seconds:.2f} s "
            f"({rate(read, seconds)}, {records_in / seconds:,.0f} records/s)"
        )
        if self.destination:
            line += f" -> {self.destination}"
        if self.latency_p50_ms is not None and self.latency_p99_ms is not None:
            line += f"; latency p50 {self.latency_p50_ms:.0f} ms, p99 {self.latency_p99_ms:.0f} ms"
        return line
