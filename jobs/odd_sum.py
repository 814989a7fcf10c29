"""Odd sum: one integer per line; the odd ones summed under the key ``odd_sum``.

11, 12, 13, 15 -> 39. A line that is not an integer is counted in ``bad_records`` and skipped.
"""

from __future__ import annotations

from mrkafka import Job, StreamOptions


class OddSum(Job):
    name = "odd_sum"
    aggregate = "sum"
    stream = StreamOptions(value_serde="long")

    def map(self, offset, line):
        try:
            number = int(line.strip())
        except ValueError:
            self.increment_counter("bad_records")
            return
        if number % 2:
            yield "odd_sum", number
