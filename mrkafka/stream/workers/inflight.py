"""What a map worker is mapping, written down before it maps, so that the next instance of
the worker knows which records a death of its process (a crash, the kernel's OOM killer, a
map that kills it) interrupted: Hadoop's skip mode for records that kill their task.

A map worker writes ``STATE_DIR/APP/inflight/map-P`` (first and last offset of the records
of input partition P it is about to map) and removes it once the map returned. A file still
there when a poll of P overlaps it means a process died mapping those records: the worker
then maps them one at a time, each under a file of its own, so the next death names the one
record. A record named alone is a *poison record*: it is never mapped again; the run stops
with one line naming it, or under ``--on-error skip`` it is skipped and counted in the job's
``bad_records``. A SIGKILL from outside while a whole poll is mapped costs one slower pass
over that poll, never a record.

The files are local to the worker's node: on a cluster, an instance that Ray starts on
another node does not see them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mrkafka.kafka.security import private_dir

__all__ = ["InFlight"]


class InFlight:
    """The in-flight files of one application's map workers, under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._ready = False

    def _path(self, partition: int) -> Path:
        return self.directory / f"map-{partition}"

    def suspect(self, partition: int) -> tuple[int, int, bool] | None:
        """The offsets (first, last) a process died mapping, and whether it mapped them one at a
        time after an earlier death; ``None`` if no process died (or the file is unreadable)."""
        try:
            first, last, alone = json.loads(self._path(partition).read_text())
            return int(first), int(last), bool(alone)
        except (OSError, ValueError, TypeError):
            return None

    def mapping(self, partition: int, first: int, last: int, alone: bool = False) -> None:
        """About to map offsets ``first`` to ``last`` of ``partition`` (``alone``: one record,
        suspected)."""
        if not self._ready:
            private_dir(self.directory, "--state-dir")
            self._ready = True
        temporary = self.directory / f".map-{partition}.{os.getpid()}"
        temporary.write_text(json.dumps([first, last, alone]))
        os.replace(temporary, self._path(partition))  # never a half-written file

    def done(self, partition: int) -> None:
        """The map of what ``mapping`` named returned (or raised): no process died."""
        self._path(partition).unlink(missing_ok=True)
