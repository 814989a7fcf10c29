"""The processes the development tools start (brokers, Prometheus): started in a session of
their own with their output in a log, known by pid afterwards, stopped with SIGTERM and then
SIGKILL. Only processes started here are ever signalled: a pid is checked against its command
line first (``running``), as a recorded pid may have been reused."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

__all__ = ["port_free", "running", "spawn", "stop"]


def port_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:``port``. SO_REUSEADDR, as Kafka binds: sockets
    a stopped broker left in TIME_WAIT do not make its port taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a child that exited is reaped, and a zombie does not count)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def running(pid: int | None, *marks: str) -> bool:
    """Whether ``pid`` runs and its command line holds every one of ``marks`` (so it is the
    process that was started, not another that got its pid)."""
    if pid is None or not _alive(pid):
        return False
    command = _cmdline(pid)
    return all(mark in command for mark in marks)


@contextlib.contextmanager
def private_files() -> Iterator[None]:
    """Meanwhile, files and directories this process (or one it starts) makes are their
    owner's only (umask 077)."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def spawn(command: Sequence[str], log: Path) -> subprocess.Popen:
    """Start ``command`` in a session of its own (a Ctrl-C to the terminal does not reach it),
    its output appended to ``log``, the files it makes readable by their owner only."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            list(command),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            umask=0o077,  # what it writes (a broker's segments, Prometheus' data) is its user's only
        )


def stop(pids: Iterable[int], timeout: float = 30.0) -> None:
    """SIGTERM each of ``pids``; SIGKILL those still running after ``timeout``; return once
    all are gone (or 5 s after the kill)."""
    pids = list(pids)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    for wait, then in ((timeout, signal.SIGKILL), (5.0, None)):
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
            time.sleep(0.1)
        for pid in pids:
            if then is not None and _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, then)
