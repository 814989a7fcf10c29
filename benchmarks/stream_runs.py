"""A stream run as a whole command, timed until its group committed every input record."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from mrkafka.kafka import admin
from mrkafka.kafka.security import PLAINTEXT, ClientSecurity

ROOT = Path(__file__).resolve().parent.parent


def seconds_to_commit(
    bootstrap: str, topic: str, app: str, state: Path, records: int, *options: str, security: ClientSecurity = PLAINTEXT
) -> float:
    """Run a bounded word count over ``topic`` as application ``app`` (``mrkafka run ... --stream
    --until-end OPTIONS``); the seconds from the command's start until group APP committed
    ``records`` (the stream's throughput: the bounded run's last steps, its part files, are not timed)."""
    args = [
        sys.executable,
        "-m",
        "mrkafka.cli",
        "run",
        str(ROOT / "jobs" / "wordcount.py"),
        "--stream",
        "--input-topic",
        topic,
        "--application-id",
        app,
        "--bootstrap-servers",
        bootstrap,
        "--until-end",
        "--state-dir",
        str(state),
        *options,
    ]
    started = time.monotonic()
    process = subprocess.Popen(args, stderr=subprocess.DEVNULL, env={**os.environ, "RAY_ADDRESS": ""})
    seconds = None
    while process.poll() is None:
        committed = admin.committed_offsets(bootstrap, app, topic, security=security)
        if seconds is None and sum(committed.values()) >= records:
            seconds = time.monotonic() - started
        time.sleep(0.1)
    if process.returncode != 0 or seconds is None:
        raise SystemExit(f"the run {app} failed (exit {process.returncode})")
    return seconds
