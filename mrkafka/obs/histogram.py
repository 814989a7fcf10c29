"""A latency histogram of fixed size: log-spaced buckets, so memory does not grow with a run."""

from __future__ import annotations

import numpy as np

__all__ = ["LatencyHistogram"]

# Bucket upper bounds in milliseconds: 0.1 ms to about 28 hours, 40 buckets a decade (6% wide).
BOUNDS_MS = np.geomspace(0.1, 1e8, 9 * 40 + 1)


class LatencyHistogram:
    """Counts of latencies per bucket; percentiles are read as the bucket's upper bound."""

    def __init__(self, counts: np.ndarray | None = None) -> None:
        self.counts = np.zeros(len(BOUNDS_MS) + 1, np.int64) if counts is None else counts

    def record(self, latencies_ms: np.ndarray) -> None:
        np.add.at(self.counts, np.searchsorted(BOUNDS_MS, latencies_ms), 1)

    def merge(self, other: LatencyHistogram) -> None:
        self.counts += other.counts

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0-100) in ms, or ``None`` with no samples."""
        total = self.total
        if not total:
            return None
        bucket = int(np.searchsorted(np.cumsum(self.counts), q / 100 * total))
        return float(BOUNDS_MS[min(bucket, len(BOUNDS_MS) - 1)])
