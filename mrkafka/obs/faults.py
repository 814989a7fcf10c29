"""A testing aid: kill or stall this process at a named point, to prove what survives there.

``MRKAFKA_FAULT=POINT:N`` makes the process SIGKILL itself the Nth time it passes ``POINT``
(counted per process); ``POINT:N:stop`` makes it SIGSTOP itself instead (a stalled
process, a zombie once another took its place, until someone sends SIGCONT). With
``MRKAFKA_FAULT_ONCE=PATH`` as well, only the first process to get there acts: it creates
``PATH`` and writes its pid there (a process that finds it does nothing), so that a
worker Ray restarts is not killed again at the same point. Unset, a point costs one
comparison.
"""

from __future__ import annotations

import os
import signal

__all__ = ["POINTS", "point"]

#: Every point, where it sits.
POINTS = {
    "map-produced": "a map task flushed its blocks and has not committed its input offsets",
    "map-revoked": "inside the revocation callback, before the revoked tasks commit",
    "reduce-produced": "a reducer flushed its changelog and output records and has not committed",
    "reduce-committed": "a reducer committed, before its state store took the interval's merges",
    "restore": "a reducer applied a batch of the changelog while restoring",
    "finish": "a reducer reached the end offset of a bounded run and has not written its part file",
    "commit-decide": "the driver checked and synced the new output's files and has not written _COMMITTING",
    "commit-part": "the driver moved one file of a decided commit into the output directory",
    "commit-output": "the driver moved the part files into the output directory, before _SUCCESS",
    "commit-success": "the driver wrote _SUCCESS and has not removed _COMMITTING",
}

_passes: dict[str, int] = {}


_SIGNALS = {"kill": signal.SIGKILL, "stop": signal.SIGSTOP}


def _parse(spec: str | None) -> tuple[str, int, signal.Signals] | None:
    if not spec:
        return None
    name, count, action = [*spec.split(":"), "kill"][:3]
    if name not in POINTS or not count.isdigit() or int(count) < 1 or action not in _SIGNALS:
        raise ValueError(
            f"MRKAFKA_FAULT={spec!r}: expected POINT:N[:kill|stop] with N >= 1 and POINT one of {', '.join(POINTS)}"
        )
    return name, int(count), _SIGNALS[action]


_fault = _parse(os.environ.get("MRKAFKA_FAULT"))


def point(name: str) -> None:
    """Pass the point ``name``: SIGKILL (or SIGSTOP) this process if ``MRKAFKA_FAULT`` says so."""
    if _fault is None or _fault[0] != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if _passes[name] != _fault[1]:
        return
    once = os.environ.get("MRKAFKA_FAULT_ONCE")
    if once:
        try:
            fd = os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, b"%d\n" % os.getpid())
        os.close(fd)
    os.kill(os.getpid(), _fault[2])
