"""Stream runs across broker outages, each on a cluster of its own, with real signals.

Every test ends with a bounded run whose part files must equal the batch run's over the
same lines, byte for byte: an outage may slow a run down, never change what it counts.
The unbounded runs are ``mrkafka run`` processes (each with its own Ray), stopped with SIGTERM.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import time
from pathlib import Path

import pytest

from mrkafka.devtools.console import produce_lines
from mrkafka.devtools.launcher import Cluster
from mrkafka.kafka import admin
from tests.helpers import WORDCOUNT, messy_corpus, mrkafka, oracle_wordcount, read_parts, real_text
from tests.integration.test_stream import assert_same_parts, batch_wordcount, stream_wordcount
from tests.stream_process import StreamRun, retrying, wait_committed

pytestmark = pytest.mark.integration

APP = "outage"


def _halves(seed: int) -> tuple[bytes, bytes]:
    data = messy_corpus(seed=seed, lines=6000) + b"\n" + real_text(1 << 20)
    middle = data.index(b"\n", len(data) // 2) + 1
    return data[:middle], data[middle:]


def _produce(bootstrap: str, topic: str, data: bytes, path: Path) -> Path:
    path.write_bytes(data)
    produce_lines(bootstrap, topic, str(path), progress=False)
    return path


def _start_run(bootstrap: str, tmp_path: Path, *extra: str) -> StreamRun:
    return StreamRun(bootstrap, APP, tmp_path / "state", tmp_path / "run.log", *extra)


def _check_output(bootstrap: str, inputs: list[Path], tmp_path: Path, reducers: int = 2) -> None:
    """A bounded run over what the faulted run left: its parts hold the oracle's counts of
    ``inputs``, and are batch's byte for byte."""
    env = {
        "bootstrap": bootstrap,
        "input_topic": "in",
        "output_topic": "out",
        "application_id": APP,
        "state_dir": str(tmp_path / "state"),
    }
    stream_wordcount(env, output=tmp_path / "S", reducers=reducers)
    counts = sum((oracle_wordcount(path.read_bytes()) for path in inputs), collections.Counter())
    assert {k: int(v) for k, v in read_parts(tmp_path / "S").items()} == dict(counts)  # the oracle first
    batch_wordcount(inputs, tmp_path / "B", reducers=reducers)
    assert_same_parts(tmp_path / "S", tmp_path / "B", reducers)


def _kill_brokers(cluster: Cluster, sig: int) -> None:
    for pid in cluster.pids().values():
        os.kill(pid, sig)
    deadline = time.monotonic() + 60
    while cluster.pids() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not cluster.pids(), "the broker did not stop"


# Each signal, and outages short, medium and of a minute.
@pytest.mark.parametrize(
    "sig,seconds",
    [(signal.SIGKILL, 2), (signal.SIGTERM, 15), (signal.SIGKILL, 60)],
    ids=["SIGKILL-2", "SIGTERM-15", "SIGKILL-60"],
)
def test_an_unbounded_run_outlives_a_broker_outage(cluster, ray_cluster, tmp_path, sig, seconds) -> None:
    bootstrap = cluster.bootstrap_servers
    admin.create_topic(bootstrap, "in", partitions=2)
    first, second = _halves(seed=seconds + sig)
    inputs = [_produce(bootstrap, "in", first, tmp_path / "first.txt")]
    with _start_run(bootstrap, tmp_path) as run:
        wait_committed(bootstrap, APP, run)
        inputs.append(_produce(bootstrap, "in", second[: len(second) // 2], tmp_path / "second.txt"))
        _kill_brokers(cluster, sig)  # while the run works on the second part
        time.sleep(seconds)
        cluster.start()
        inputs.append(_produce(bootstrap, "in", second[len(second) // 2 :], tmp_path / "third.txt"))
        wait_committed(bootstrap, APP, run)  # the run went on by itself
        assert run.stop() == 0, run.tail()
    # An outage the run rides out is not the user's business: no worker printed a line.
    log = run.tail(1_000_000)
    assert "(MapWorker" not in log and "(ReduceWorker" not in log, log[-3000:]
    _check_output(bootstrap, inputs, tmp_path)


def test_a_run_started_while_the_broker_is_down_waits_for_it(cluster, ray_cluster, tmp_path) -> None:
    bootstrap = cluster.bootstrap_servers
    admin.create_topic(bootstrap, "in", partitions=2)
    first, second = _halves(seed=77)
    inputs = [_produce(bootstrap, "in", first + second, tmp_path / "all.txt")]
    _kill_brokers(cluster, signal.SIGKILL)
    with _start_run(bootstrap, tmp_path) as run:
        time.sleep(8)
        assert run.process.poll() is None, run.tail()
        cluster.start()
        wait_committed(bootstrap, APP, run)
        assert run.stop() == 0, run.tail()
    _check_output(bootstrap, inputs, tmp_path)


def test_a_run_gives_up_after_the_task_timeout_with_one_line(cluster, tmp_path) -> None:
    bootstrap = cluster.bootstrap_servers
    admin.create_topic(bootstrap, "in", partitions=1)
    _produce(bootstrap, "in", b"a b\n" * 100, tmp_path / "in.txt")
    _kill_brokers(cluster, signal.SIGKILL)
    with _start_run(bootstrap, tmp_path, "--until-end", "--task-timeout", "5") as run:
        code = run.process.wait(timeout=120)
    log = (tmp_path / "run.log").read_text(errors="replace")
    assert code == 8 and f"no Kafka broker answers at {bootstrap}" in log and "Traceback" not in log


def test_a_three_node_cluster_loses_a_node_mid_run(cluster3, ray_cluster, tmp_path) -> None:
    bootstrap = cluster3.bootstrap_servers
    admin.create_topic(bootstrap, "in", partitions=2, replication_factor=3, configs={"min.insync.replicas": "2"})
    first, second = _halves(seed=33)
    inputs = [_produce(bootstrap, "in", first, tmp_path / "first.txt")]
    with _start_run(bootstrap, tmp_path) as run:
        wait_committed(bootstrap, APP, run)
        for topic in (f"{APP}-repartition", f"{APP}-state-changelog", "out"):
            info = retrying(admin.describe_topic, bootstrap, topic)
            assert {len(p.replicas) for p in info.partitions} == {3}, topic
            assert info.configs["min.insync.replicas"] == "2", topic
        inputs.append(_produce(bootstrap, "in", second, tmp_path / "second.txt"))
        os.kill(cluster3.pids()[1], signal.SIGKILL)
        wait_committed(bootstrap, APP, run)
        assert run.stop() == 0, run.tail()
    _check_output(bootstrap, inputs, tmp_path)


def _move(bootstrap: str, moves: dict[tuple[str, int], list[int]], plan: Path) -> None:
    """``mrkafka topic reassign`` of ``moves``, verified until done; Kafka's metadata then shows them."""
    entries = [{"topic": t, "partition": p, "replicas": r} for (t, p), r in moves.items()]
    plan.write_text(json.dumps({"version": 1, "partitions": entries}))
    reassign = ["topic", "reassign", "--reassignment-json-file", str(plan), "--bootstrap-server", bootstrap]
    started = mrkafka(*reassign, "--execute")
    assert started.returncode == 0, started.stderr
    deadline = time.monotonic() + 120
    while "still in progress" in (verified := mrkafka(*reassign, "--verify")).stdout:
        assert time.monotonic() < deadline, verified.stdout
        time.sleep(1)
    assert verified.stdout.count("is completed") == len(moves), verified.stdout
    for topic in {t for t, _ in moves}:
        placed = {p.partition: p.replicas for p in admin.describe_topic(bootstrap, topic).partitions}
        assert {p: r for (t, p), r in moves.items() if t == topic}.items() <= placed.items(), topic


def test_a_run_whose_partitions_move_and_whose_broker_is_replaced_mid_run_equals_batch(
    cluster4, ray_cluster, tmp_path
) -> None:
    """While the run counts what comes in meanwhile: every partition of the input, repartition,
    changelog and output topics loses its leader's replica to the broker it was not on, which
    leads it then; a fifth broker joins (``kafka add-broker``), every partition on the fourth,
    Kafka's own topics' too, moves onto it, and the fourth leaves (``kafka remove-broker``)."""
    bootstrap = cluster4.bootstrap_servers
    admin.create_topic(bootstrap, "in", partitions=2, replication_factor=3)
    data = messy_corpus(seed=44, lines=9000) + b"\n" + real_text(3 << 19)
    thirds = [data.index(b"\n", len(data) * k // 3) + 1 for k in (1, 2)]
    parts = [data[: thirds[0]], data[thirds[0] : thirds[1]], data[thirds[1] :]]
    inputs = [_produce(bootstrap, "in", parts[0], tmp_path / "first.txt")]
    kafka = ["kafka", "--data-dir", str(cluster4.data_dir)]
    with _start_run(bootstrap, tmp_path) as run:
        wait_committed(bootstrap, APP, run)
        moves = {}
        for topic in ("in", f"{APP}-repartition", f"{APP}-state-changelog", "out"):
            for p in admin.describe_topic(bootstrap, topic).partitions:
                spare = next(b for b in cluster4.broker_ids if b not in p.replicas)
                moves[topic, p.partition] = [spare, *p.replicas[1:]]
        inputs.append(_produce(bootstrap, "in", parts[1], tmp_path / "second.txt"))
        _move(bootstrap, moves, tmp_path / "plan.json")

        added = mrkafka(kafka[0], "add-broker", *kafka[1:])
        assert added.returncode == 0 and added.stdout.count("127.0.0.1:") == 5, added.stderr
        leaving, joined = 3, 4  # the fourth node is a broker only; the new one gets the next id
        off = {
            (topic, p.partition): [joined if r == leaving else r for r in p.replicas]
            for topic in admin.list_topics(bootstrap, internal=True)
            for p in admin.describe_topic(bootstrap, topic).partitions
            if leaving in p.replicas
        }
        inputs.append(_produce(bootstrap, "in", parts[2], tmp_path / "third.txt"))
        for broker, refusal in ((leaving, "still holds"), (0, "is a controller too"), (9, "has no broker 9")):
            refused = mrkafka(kafka[0], "remove-broker", str(broker), *kafka[1:])
            assert refused.returncode == 2 and refusal in refused.stderr, refused.stderr
        _move(bootstrap, off, tmp_path / "off.json")
        removed = mrkafka(kafka[0], "remove-broker", str(leaving), *kafka[1:])
        assert removed.returncode == 0, removed.stderr
        endpoints = mrkafka(
            *kafka[:1], "tool", *kafka[1:], "kafka-cluster", "list-endpoints", "--bootstrap-server", bootstrap
        )
        assert sorted(int(line.split()[0]) for line in endpoints.stdout.splitlines()[1:]) == [0, 1, 2, 4], endpoints
        wait_committed(bootstrap, APP, run)
        assert run.stop() == 0, run.tail()
    _check_output(bootstrap, inputs, tmp_path)


def test_a_reducer_whose_broker_dies_during_its_restore_restores_in_full(cluster, ray_cluster, tmp_path) -> None:
    import asyncio

    from mrkafka.job import JobSpec, load_job
    from mrkafka.settings import StreamSettings
    from mrkafka.stream.config import StreamConfig
    from mrkafka.stream.workers import ReduceWorker

    bootstrap = cluster.bootstrap_servers
    admin.create_topic(bootstrap, "in", partitions=1)
    data = b"".join(b"w%d x\n" % i for i in range(300_000))  # a changelog of 300,001 keys to restore
    _produce(bootstrap, "in", data, tmp_path / "in.txt")
    env = {
        "bootstrap": bootstrap,
        "input_topic": "in",
        "output_topic": "out",
        "application_id": APP,
        "state_dir": str(tmp_path / "state"),
    }
    stream_wordcount(env, reducers=1)
    _, changelog_ends = admin.topic_offsets(bootstrap, f"{APP}-state-changelog")
    _, repartition_ends = admin.topic_offsets(bootstrap, f"{APP}-repartition")
    config = StreamConfig.of(
        JobSpec(load_job(WORDCOUNT)),
        StreamSettings(
            application_id=APP,
            bootstrap=bootstrap,
            input_topic="in",
            output_topic="out",
            reducers=1,
            state_dir=env["state_dir"],
        ),
    )

    async def restore_through_an_outage() -> int:
        worker = ReduceWorker(config, 0)  # a fresh process: its memory store restores in full
        run = asyncio.ensure_future(worker.run())
        store = worker.reducer.store
        while store.checkpoint is None:  # the first restored batch is in
            await asyncio.sleep(0.002)
        restored_when_killed = store.checkpoint.offset
        await asyncio.to_thread(_kill_brokers, cluster, signal.SIGKILL)  # the worker's loop runs on
        await asyncio.sleep(3)
        await asyncio.to_thread(cluster.start)
        await worker.write_part(str(tmp_path / "part"), "text", repartition_ends[0])
        await worker.stop()
        await run
        return restored_when_killed

    restored_when_killed = asyncio.run(restore_through_an_outage())
    assert 0 < restored_when_killed < changelog_ends[0]  # the outage did fall inside the restore
    got = {k: int(v) for k, v in (line.rsplit(b"\t", 1) for line in (tmp_path / "part").read_bytes().splitlines())}
    assert got == dict(oracle_wordcount(data))  # the whole state, restored through the outage
