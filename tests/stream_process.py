"""Stream runs as real ``mrkafka run --stream`` processes, and the processes of their Ray.

Each run starts in a session of its own, so that its Ray (GCS, raylet, workers) can be
found by session id and cleaned up by process group when the driver is killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mrkafka.errors import TransientKafkaError
from mrkafka.kafka import admin
from tests.helpers import WORDCOUNT


class StreamRun:
    """One driver process of a word count stream run (with its own Ray), logging to ``log``."""

    def __init__(
        self, bootstrap: str, app: str, state_dir: Path, log: Path, *extra: str, env: dict[str, str] | None = None
    ) -> None:
        args = [
            sys.executable,
            "-m",
            "mrkafka.cli",
            "run",
            str(WORDCOUNT),
            "--stream",
            "--input-topic",
            "in",
            "--output-topic",
            "out",
            "--application-id",
            app,
            "--bootstrap-servers",
            bootstrap,
            "--state-dir",
            str(state_dir),
            "--commit-interval-ms",
            "200",
            *extra,
        ]
        self.log = log
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "RAY_ADDRESS": "", **(env or {})},
            )

    def __enter__(self) -> StreamRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def workers(self, kind: str) -> list[int]:
        """The pids of this run's Ray workers of ``kind`` (``MapWorker``, ``ReduceWorker``)."""
        return [pid for pid, cmdline in _session_processes(self.pid) if cmdline.startswith(f"ray::{kind}".encode())]

    def stop(self, timeout: float = 120) -> int:
        """SIGTERM (a graceful stop); the run's exit code, its process group gone after."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the driver and everything of its session it orphaned (Ray's processes)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait()
        for pid, _ in _session_processes(self.pid):  # a process that left the group, if any
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _session_processes(sid: int) -> list[tuple[int, bytes]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) == sid:
                found.append((int(entry.name), (entry / "cmdline").read_bytes()))
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue
    return found


def retrying(call, *args, timeout: float = 60):
    """An admin call, retried while brokers come back or a request meets a node that is down."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call(*args)
        except TransientKafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def committed_sum(bootstrap: str, group: str, topic: str) -> int:
    return sum(retrying(admin.committed_offsets, bootstrap, group, topic).values())


def wait_committed(bootstrap: str, app: str, run: StreamRun | None, timeout: float = 240) -> None:
    """Until group ``app`` committed the input's end offsets (the run is then idle), or fail.

    The ends are read until they name partitions: right after a topic is created, a node of a
    cluster can still describe it without any, and a wait on no partition would end at once."""
    ends: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run is not None and run.process.poll() is not None:
            raise AssertionError("the run ended: " + run.tail())
        ends = ends or retrying(admin.topic_offsets, bootstrap, "in", "read_committed")[1]
        committed = retrying(admin.committed_offsets, bootstrap, app, "in")
        if ends and all(committed.get(p, 0) >= end for p, end in ends.items()):
            return
        time.sleep(0.2)
    raise AssertionError(f"not committed within {timeout} s: " + (run.tail() if run is not None else ""))
