"""A testing aid: kill this process at a named point, to prove what survives a crash there.

``MRKAFKA_FAULT=POINT:N`` makes the process SIGKILL itself the Nth time it passes ``POINT``
(counted per process). With ``MRKAFKA_FAULT_ONCE=PATH`` as well, only the first process
to get there is killed (it creates ``PATH``; a process that finds it does nothing), so
that a worker Ray restarts is not killed again at the same point. Unset, a point costs
one comparison.
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
    "commit-output": "the driver moved the part files into the output directory, before _SUCCESS",
}

_passes: dict[str, int] = {}


def _parse(spec: str | None) -> tuple[str, int] | None:
    if not spec:
        return None
    name, _, count = spec.partition(":")
    if name not in POINTS or not count.isdigit() or int(count) < 1:
        raise ValueError(f"MRKAFKA_FAULT={spec!r}: expected POINT:N with N >= 1 and POINT one of {', '.join(POINTS)}")
    return name, int(count)


_fault = _parse(os.environ.get("MRKAFKA_FAULT"))


def point(name: str) -> None:
    """Pass the point ``name``: SIGKILL this process if ``MRKAFKA_FAULT`` says so."""
    if _fault is None or _fault[0] != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if _passes[name] != _fault[1]:
        return
    once = os.environ.get("MRKAFKA_FAULT_ONCE")
    if once:
        try:
            os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
    os.kill(os.getpid(), signal.SIGKILL)
