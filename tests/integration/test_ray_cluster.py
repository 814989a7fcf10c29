"""Runs on a Ray cluster of two nodes (two raylets on this machine, one CPU each, token
authentication: ``tests/ray_nodes.py``): batch with its input and output on a real S3 API
server, a bounded stream run, and a batch run that loses a node. Where tasks ran is Ray's own
record (its GCS's actor table), read by a process of its own."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from mrkafka.devtools.console import produce_lines
from mrkafka.kafka import admin
from tests.helpers import ROOT, WORDCOUNT, messy_corpus, oracle_wordcount, read_parts, real_text, write_job
from tests.s3 import BUCKET, S3, s3_server

pytestmark = pytest.mark.integration


class Nodes(NamedTuple):
    address: str
    raylet: int  # the second node's
    env: dict[str, str]  # a run's, with RAY_ADDRESS and the cluster's token


@contextlib.contextmanager
def two_nodes(tmp_path: Path, env: dict[str, str]) -> Iterator[Nodes]:
    """The cluster, its nodes' environment ``env`` (their workers inherit it) plus the token."""
    env = {k: v for k, v in env.items() if not k.startswith(("RAY_ADDRESS", "RAY_AUTH", "AWS_ENDPOINT_URL"))}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    with open(tmp_path / "ray-nodes.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.ray_nodes"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )
    try:
        line = process.stdout.readline()
        assert line, (tmp_path / "ray-nodes.log").read_text()
        started = json.loads(line)
        yield Nodes(started["address"], started["raylet"], {**env, "RAY_ADDRESS": started["address"]})
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=60)
        finally:
            with contextlib.suppress(ProcessLookupError):  # whatever of its group outlived it
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def actors(nodes: Nodes) -> dict[str, set[str]]:
    """The nodes each actor class ran on, alive or dead, as the cluster's GCS records them."""
    code = (
        "import json, ray; ray.init(logging_level='ERROR'); actors = ray._private.state.actors().values(); "
        "print(json.dumps([[a['ActorClassName'], a['Address']['NodeID']] for a in actors]))"
    )
    done = subprocess.run([sys.executable, "-c", code], env=nodes.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    placed: dict[str, set[str]] = {}
    for name, node in json.loads(done.stdout.splitlines()[-1]):
        placed.setdefault(name, set()).add(node)
    return placed


def mrkafka(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mrkafka.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    with s3_server() as store:
        yield store


def test_batch_on_two_nodes_and_s3_equals_the_inline_run(s3: S3, tmp_path: Path) -> None:
    data = real_text(4 << 20) + messy_corpus(lines=2000)
    (tmp_path / "in.txt").write_bytes(data)
    s3.client.put_object(Bucket=BUCKET, Key="cluster/in/in.txt", Body=data)
    words = ["--reducers", "4", "--block-size", "256KiB"]
    inline = ["run", str(WORDCOUNT), "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "inline")]
    done = mrkafka(s3.env, *inline, *words, "--runner", "inline")
    assert done.returncode == 0, done.stderr
    with two_nodes(tmp_path, s3.env) as nodes:
        # The endpoint is in the driver's environment only: it reaches the workers with the run.
        env = {**nodes.env, "AWS_ENDPOINT_URL": s3.endpoint}
        run = ["run", str(WORDCOUNT), "--input", f"s3://{BUCKET}/cluster/in/", "--output", f"s3://{BUCKET}/cluster/out"]
        done = mrkafka(env, *run, *words)
        assert done.returncode == 0, done.stderr
        assert f"joined the Ray cluster at {nodes.address}: 2 nodes, 2 CPUs" in done.stderr
        placed = actors(nodes)
    assert len(placed["Mapper"]) == 2 and len(placed["ReduceGroup"]) == 2, placed
    parts = {name: body for name, body in s3.objects("cluster/out").items() if name.startswith("part-")}
    assert parts == {p.name: p.read_bytes() for p in sorted((tmp_path / "inline").glob("part-*"))}
    assert {k: int(v) for k, v in s3.parts("cluster/out").items()} == dict(oracle_wordcount(data))


def test_a_bounded_stream_run_on_two_nodes_equals_batch(
    s3: S3, bootstrap: str, topic_name: str, tmp_path: Path
) -> None:
    data = real_text(1 << 20) + messy_corpus(lines=1000)
    (tmp_path / "in.txt").write_bytes(data)
    admin.create_topic(bootstrap, topic_name, partitions=3)
    produce_lines(bootstrap, topic_name, str(tmp_path / "in.txt"), progress=False)
    batch = ["run", str(WORDCOUNT), "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "b")]
    done = mrkafka(s3.env, *batch, "--runner", "inline")
    assert done.returncode == 0, done.stderr
    with two_nodes(tmp_path, s3.env) as nodes:
        env = {**nodes.env, "AWS_ENDPOINT_URL": s3.endpoint}
        stream = ["run", str(WORDCOUNT), "--stream", "--bootstrap-servers", bootstrap, "--input-topic", topic_name]
        stream += ["--application-id", f"{topic_name}-app", "--state-dir", str(tmp_path / "state"), "--until-end"]
        done = mrkafka(env, *stream, "--output", f"s3://{BUCKET}/stream/{topic_name}")
        assert done.returncode == 0, done.stderr
        placed = actors(nodes)
    assert len(placed["MapWorker"] | placed["ReduceWorker"]) == 2, placed
    parts = {name: body for name, body in s3.objects(f"stream/{topic_name}").items() if name.startswith("part-")}
    assert parts == {p.name: p.read_bytes() for p in sorted((tmp_path / "b").glob("part-*"))}


SLOW_COUNT = '''
import time

from mrkafka import Job


class SlowCount(Job):
    """Word count whose map takes 2 ms a line: a run that lasts long enough to lose a node in."""

    def map(self, offset, line):
        time.sleep(0.002)
        for word in line.split():
            yield word, 1

    def reduce(self, a, b):
        return a + b
'''


def lose_a_node(nodes: Nodes, args: list[str], meanwhile: Callable[[], None]) -> str:
    """Run ``mrkafka ARGS`` on the cluster; once it joined and ``meanwhile`` returned, SIGKILL the
    second node's raylet (the run still going); its stderr, once it ended well."""
    run = subprocess.Popen(
        [sys.executable, "-m", "mrkafka.cli", *args],
        env=nodes.env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    lines = [run.stderr.readline()]
    assert "joined the Ray cluster" in lines[0], lines
    meanwhile()
    assert run.poll() is None, "the run ended before the node was lost"
    os.kill(nodes.raylet, signal.SIGKILL)
    lines += run.stderr.readlines()
    assert run.wait(timeout=600) == 0, "".join(lines)
    return "".join(lines)


def test_a_node_lost_mid_run_runs_its_tasks_again(tmp_path: Path) -> None:
    data = real_text(512 << 10)
    (tmp_path / "in.txt").write_bytes(data)
    job = write_job(tmp_path, SLOW_COUNT)
    args = ["run", str(job), "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "out")]
    with two_nodes(tmp_path, dict(os.environ)) as nodes:
        # The map tasks take about 10 s on two nodes.
        stderr = lose_a_node(nodes, [*args, "--reducers", "4", "--block-size", "32KiB"], lambda: time.sleep(2))
    assert "The actor died because its node has died" in stderr and "(attempt 2 of 4)" in stderr, stderr
    assert f"joined the Ray cluster at {nodes.address}: 1 node, 1 CPU\n" in stderr, stderr
    assert {k: int(v) for k, v in read_parts(tmp_path / "out").items()} == dict(oracle_wordcount(data))
    counters = json.loads((tmp_path / "out" / "_COUNTERS.json").read_text())
    assert counters["Map-Reduce Framework"]["Map input records"] == data.count(b"\n")  # the last attempt's only


def test_a_node_lost_mid_stream_run_restores_its_workers_elsewhere(
    bootstrap: str, topic_name: str, tmp_path: Path
) -> None:
    data = real_text(512 << 10)
    (tmp_path / "in.txt").write_bytes(data)
    admin.create_topic(bootstrap, topic_name, partitions=2)
    produce_lines(bootstrap, topic_name, str(tmp_path / "in.txt"), progress=False)
    job = write_job(tmp_path, SLOW_COUNT)
    batch = ["run", str(job), "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "b")]
    done = mrkafka(dict(os.environ), *batch, "--runner", "inline")
    assert done.returncode == 0, done.stderr
    stream = ["run", str(job), "--stream", "--bootstrap-servers", bootstrap, "--input-topic", topic_name]
    stream += ["--application-id", f"{topic_name}-app", "--state-dir", str(tmp_path / "state"), "--until-end"]

    def on_both_nodes() -> None:  # about 2 s; the map takes about 10 s on two nodes
        placed = actors(nodes)
        assert len(placed["MapWorker"] | placed["ReduceWorker"]) == 2, placed

    with two_nodes(tmp_path, dict(os.environ)) as nodes:
        lose_a_node(nodes, [*stream, "--output", str(tmp_path / "s")], on_both_nodes)
    assert {p.name: p.read_bytes() for p in (tmp_path / "s").glob("part-*")} == {
        p.name: p.read_bytes() for p in (tmp_path / "b").glob("part-*")
    }
    assert {k: int(v) for k, v in read_parts(tmp_path / "s").items()} == dict(oracle_wordcount(data))
