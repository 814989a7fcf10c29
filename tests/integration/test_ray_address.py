"""Which Ray a run joins: a cluster that ``ray start`` left on the machine is joined only when
named, and one that refuses the run's authentication token says so at once."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import WORDCOUNT, oracle_wordcount, read_parts

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A Ray head started with ``ray start --block`` and token authentication: its address and
    the file holding its token. Stopped by its pid (``ray stop`` would stop every Ray here)."""
    root = tmp_path_factory.mktemp("ray-head")
    token = root / "token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    with socket.socket() as probe:  # an ephemeral port: outside Ray's worker ports (10002-19999)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    ray = Path(sys.executable).with_name("ray")
    command = [str(ray), "start", "--head", "--block", f"--port={port}", "--num-cpus=1", "--include-dashboard=false"]
    with open(root / "ray.log", "wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while b"Ray runtime started" not in (root / "ray.log").read_bytes():
            assert process.poll() is None and time.monotonic() < deadline, (root / "ray.log").read_text()
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", token
    finally:
        # ray start --block stops the head's processes when it is terminated itself (in 5 s); a
        # SIGTERM to its whole group instead makes it wait about 30 s for processes already gone.
        process.terminate()
        try:
            process.wait(timeout=60)
        finally:
            with contextlib.suppress(ProcessLookupError):  # whatever of the group outlived it
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def run(tmp_path: Path, *extra: str, **env: str) -> subprocess.CompletedProcess:
    (tmp_path / "in.txt").write_bytes(b"a b a\nc\n")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "RAY_AUTH"))}
    args = ["run", str(WORDCOUNT), "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "out")]
    return subprocess.run(
        [sys.executable, "-m", "mrkafka.cli", *args, "--runner", "ray", *extra],
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_run_without_an_address_starts_its_own_ray(head: tuple[str, Path], tmp_path: Path) -> None:
    done = run(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "multiple active Ray instances" not in done.stderr
    assert read_parts(tmp_path / "out") == {k: b"%d" % v for k, v in oracle_wordcount(b"a b a\nc\n").items()}


def test_a_cluster_that_refuses_the_token_is_named_at_once(head: tuple[str, Path], tmp_path: Path) -> None:
    address, token = head
    done = run(tmp_path, "--ray-address", address)
    assert done.returncode == 6 and done.stderr.count("\n") == 1, done.stderr
    assert f"Ray at {address} refused this process's authentication token" in done.stderr
    done = run(tmp_path, "--ray-address", address, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    assert done.returncode == 0, done.stderr
