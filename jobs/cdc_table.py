"""A CDC table: change events ``op,id,name`` (i = insert, u = update, d = delete) -> the
latest row per id, the stream/table duality.

``i,10,Mukesh``, ``i,11,Suresh``, ``u,10,Mukesh Kumar`` -> 10: Mukesh Kumar, 11: Suresh.
The latest event of an id wins by its position: the byte offset of its line in batch (one
input file), the record offset in stream, where the events of an id share a partition
because the topic is keyed by id (``mrkafka produce --key-sep , --key-field 2``). The reduce
keeps the event with the larger position, so it does not depend on arrival order. A delete
removes the row: no line in the part files, a tombstone on the (compacted) output topic.
"""

from __future__ import annotations

from mrkafka import Job, StreamOptions


class CdcTable(Job):
    name = "cdc_table"
    # The events of one id must share a partition, in order; the output topic is a table.
    stream = StreamOptions(keyed_input=True, output_topic_configs={"cleanup.policy": "compact"})

    def map(self, offset, line):
        op, _, rest = line.partition(",")
        key, _, name = rest.partition(",")
        if op not in ("i", "u", "d") or not key.strip().lstrip("-").isdigit():
            self.increment_counter("bad_records")
            return
        yield int(key), (offset, op, name)

    def reduce(self, a, b):
        return b if b[0] > a[0] else a

    def finish(self, key, event):
        _, op, name = event
        return None if op == "d" else name
