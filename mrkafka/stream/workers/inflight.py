"""What a map worker is mapping, written down before it maps, so that the next instance of
the worker knows which records a death of its process (a crash, the kernel's OOM killer, a
map that kills it) interrupted: Hadoop's skip mode for records that kill their task.

A map worker writes ``STATE_DIR/APP/inflight/map-P`` (first and last offset of the records
of input partition P it is about to map, and how many deaths led to that range) and removes
it once the map returned. A file still there when a poll of P overlaps it means a process
died mapping those records: the worker maps them again in ``PIECES`` pieces, each under a
file of its own, so that each further death narrows the range (a poll of 20,000 records
comes down to one in four deaths). A record that killed two processes, the last time mapped
alone, is a *poison record*: it is never mapped again; the run stops with one line naming it,
or under ``--on-error skip`` it is skipped and counted in the job's ``bad_records``. A SIGKILL
from outside while the worker maps costs one slower pass over a poll, never a record: only
kills that land, one after the other, in the narrowing maps of one range could name a record
that did nothing.

The files are local to the worker's node: on a cluster, an instance that Ray starts on
another node does not see them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mrkafka.kafka.security import private_dir

__all__ = ["PIECES", "InFlight"]

#: How many pieces a range that a process died mapping is mapped in, the next time.
PIECES = 16


class InFlight:
    """The in-flight files of one application's map workers, under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._ready = False

    def _path(self, partition: int) -> Path:
        return self.directory / f"map-{partition}"

    def suspect(self, partition: int) -> tuple[int, int, int] | None:
        """The offsets (first, last) a process died mapping, and how many processes died
        mapping a range that holds them (that one included); ``None`` if no process died (or
        the file is unreadable)."""
        try:
            first, last, deaths = json.loads(self._path(partition).read_text())
            return int(first), int(last), int(deaths) + 1
        except (OSError, ValueError, TypeError):
            return None

    def mapping(self, partition: int, first: int, last: int, deaths: int = 0) -> None:
        """About to map offsets ``first`` to ``last`` of ``partition``, inside a range that
        ``deaths`` processes died mapping."""
        if not self._ready:
            private_dir(self.directory, "--state-dir")
            self._ready = True
        temporary = self.directory / f".map-{partition}.{os.getpid()}"
        temporary.write_text(json.dumps([first, last, deaths]))
        os.replace(temporary, self._path(partition))  # never a half-written file

    def done(self, partition: int) -> None:
        """The map of what ``mapping`` named returned (or raised): no process died."""
        self._path(partition).unlink(missing_ok=True)
