"""Sales by city: JSON sales such as ``{"pid": 101, "amount": 5500, "city": "BLR"}`` -> per
city the total amount and the number of sales.

A line that is not JSON, lacks a field, or has an amount that is not a number is counted in
``bad_records`` and skipped; it never stops the job.
"""

from __future__ import annotations

import json

from mrkafka import Job


class SalesByCity(Job):
    name = "sales_by_city"

    def map(self, offset, line):
        try:
            sale = json.loads(line)
            city, amount = sale["city"], sale["amount"]
            sale["pid"]
        except (ValueError, TypeError, KeyError):
            self.increment_counter("bad_records")
            return
        if not isinstance(city, str) or isinstance(amount, bool) or not isinstance(amount, (int, float)):
            self.increment_counter("bad_records")
            return
        yield city, (amount, 1)

    def reduce(self, a, b):
        return (a[0] + b[0], a[1] + b[1])

    def finish(self, city, value):
        return {"total": value[0], "sales": value[1]}
