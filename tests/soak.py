"""A kill soak: a stream run killed again and again must end exactly where batch ends.

An unbounded word count over a topic of messy real text (the tests' tricky corpus) runs on
a cluster of its own (one broker, or three: a kill during a leader change is where markers
arrive late) while its processes are SIGKILLed: at every scripted fault point (see
``mrkafka.obs.faults``; each one fires, or the soak fails) and at random times a map worker,
a reducer or the driver. Input keeps
arriving; after every kill the run goes on (Ray restarts a worker; a killed driver is
started again). Then a bounded run writes part files, itself killed once between a
reducer's end and its part file and once while the driver commits the output. Pass, under
exactly once: part files holding the oracle's counts (``Counter`` over ``bytes.split()`` of
the lines fed) and byte-identical to batch's, the output topic's latest value per key
(read_committed) equal to the oracle's, and no transaction left open.
Under at least once the same soak counts the keys it finds wrong.

    python -m tests.soak --kills 30 [--guarantee at-least-once] [--seed N] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, ConsumerGroupState, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from mrkafka.batch import run_batch
from mrkafka.core.serdes import deserialize_long
from mrkafka.devtools.console import produce_lines
from mrkafka.devtools.launcher import Cluster
from mrkafka.job import JobSpec, load_job
from mrkafka.kafka import admin
from mrkafka.settings import BatchSettings
from tests.helpers import WORDCOUNT, free_ports, messy_corpus, oracle_wordcount, read_parts, tricky_corpus
from tests.stream_process import StreamRun, committed_sum, retrying

APP = "soak"
#: The points an unbounded run passes (the bounded run's two are killed at the end).
SCRIPTED = ("map-produced", "reduce-produced", "reduce-committed", "restore", "map-revoked")
TARGETS = ("MapWorker", "ReduceWorker", "driver")
FAULT_WAIT_S = 45.0


@dataclass
class SoakResult:
    kills: collections.Counter = field(default_factory=collections.Counter)
    recovery_s: list[float] = field(default_factory=list)  # from a kill to the reducers' next commit
    keys: int = 0
    differing_parts: int = 0  # keys whose count in the part files is not the oracle's
    differing_topic: int = 0  # keys whose latest output record (read_committed) is not the oracle's
    parts_identical: bool = False  # the part files byte for byte batch's, a second check
    open_transactions: list[str] = field(default_factory=list)  # topics whose LSO is below the high watermark
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        clean = not (self.differing_parts or self.differing_topic or self.open_transactions)
        return self.parts_identical and clean

    def report(self) -> str:
        kills = ", ".join(f"{name} {count}" for name, count in sorted(self.kills.items()))
        lines = [f"kills: {sum(self.kills.values())} ({kills})"]
        if self.recovery_s:
            ordered = sorted(self.recovery_s)
            p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
            lines.append(
                f"kill to next commit: p50 {statistics.median(ordered):.1f} s, p99 {p99:.1f} s, "
                f"over {len(ordered)} kills"
            )
        lines.append(
            f"keys: {self.keys}; differing from the oracle: {self.differing_parts} in the part files, "
            f"{self.differing_topic} in the output topic; part files identical to batch's: {self.parts_identical}"
        )
        lines.append(f"open transactions: {', '.join(self.open_transactions) or 'none'}")
        lines.append(f"{'PASS' if self.passed else 'FAIL'} in {self.seconds:.0f} s")
        return "\n".join(lines)


class _Input:
    """The input topic, fed chunk by chunk; every chunk is kept for the batch run."""

    def __init__(self, bootstrap: str, workdir: Path, chunks: int) -> None:
        self.bootstrap, self.workdir, self.files = bootstrap, workdir, []
        data = tricky_corpus()
        size = len(data) // chunks
        self._pieces, start = [], 0
        while start < len(data):
            end = data.find(b"\n", start + size) + 1 or len(data)
            self._pieces.append(data[start:end])
            start = end

    @contextlib.contextmanager
    def running(self, every: float = 1.5) -> Iterator[None]:
        """Feed a chunk every ``every`` seconds, in a thread, until the block ends."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(every):
                self.feed()

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def feed(self) -> None:
        n = len(self.files)
        piece = self._pieces[n] if n < len(self._pieces) else messy_corpus(seed=n, lines=400)
        path = self.workdir / f"input-{n:03d}.txt"
        path.write_bytes(piece)
        produce_lines(self.bootstrap, "in", str(path), progress=False)
        self.files.append(path)


def _until(condition, run: StreamRun | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if run is not None and run.process.poll() is not None:
            raise AssertionError(f"the run ended (exit {run.process.returncode}): {run.tail()}")
        time.sleep(0.1)
    return False


def _kill(run: StreamRun, target: str, rng: random.Random) -> str:
    """SIGKILL the driver of ``run``, or one of its workers of kind ``target``."""
    if target == "driver":
        run.kill()
        return target
    if not _until(lambda: bool(run.workers(target)), run, 30):  # one may be restarting
        raise AssertionError(f"no {target} process: {run.tail()}")
    os.kill(rng.choice(run.workers(target)), signal.SIGKILL)
    return target


def _held(client: AdminClient) -> list[int]:
    """How many partitions each member of group APP holds while the group is stable (else none),
    as ``client`` (confluent-kafka's admin client, not the engine's code) describes it."""
    try:
        (group,) = (f.result(timeout=10) for f in client.describe_consumer_groups([APP]).values())
    except KafkaException:
        return []
    if group.state != ConsumerGroupState.STABLE:
        return []
    return sorted(len(m.assignment.topic_partitions) for m in group.members)


def _both_assigned(client: AdminClient) -> bool:
    """Whether group APP is stable with two members, each holding a partition."""
    return _held(client) == [1, 1]


def _stall_then_kill(run: StreamRun, client: AdminClient, rng: random.Random) -> str:
    """SIGSTOP a map worker until its session ends and the other one holds both partitions, then
    SIGKILL it. The instance Ray starts next takes a partition back, which the survivor must
    revoke first: under cooperative rebalancing a partition that does not move is not revoked,
    so a plain kill (its partition waits for the restarted instance) may revoke nothing."""
    if not _until(lambda: bool(run.workers("MapWorker")), run, 30):
        raise AssertionError(f"no MapWorker process: {run.tail()}")
    pid = rng.choice(run.workers("MapWorker"))
    os.kill(pid, signal.SIGSTOP)
    try:
        if not _until(lambda: _held(client) == [2], run, 60):
            raise AssertionError(f"the other map worker never took both partitions: {run.tail()}")
    finally:
        os.kill(pid, signal.SIGKILL)
    return "MapWorker (stalled, then)"


class _Commits:
    """The reducers' committed repartition offsets, summed: they move at every commit."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap

    def now(self) -> int:
        return committed_sum(self.bootstrap, f"{APP}-reducers", f"{APP}-repartition")

    def next_after(self, since: float, run: StreamRun, timeout: float = 180) -> float:
        """Seconds from ``since`` (a kill) to the reducers' next commit."""
        before = self.now()
        if not _until(lambda: self.now() > before, run, timeout):
            raise AssertionError(f"no commit within {timeout:.0f} s of a kill: {run.tail()}")
        return time.monotonic() - since


def soak(
    workdir: Path,
    kills: int = 8,
    guarantee: str = "exactly-once",
    seed: int = 1,
    say=print,
    brokers: int = 1,
    points: tuple[str, ...] = SCRIPTED,
) -> SoakResult:
    """Run the soak in ``workdir`` (a cluster of its own of ``brokers``); see the module
    docstring. Every one of ``points`` is killed at once at least (the soak fails if one is not
    reached), then they come round again until ``kills`` is reached."""
    started, rng, result = time.monotonic(), random.Random(seed), SoakResult()
    cluster = Cluster(workdir / "kafka", brokers=brokers, port=free_ports(brokers))
    cluster.start()
    try:
        bootstrap = cluster.bootstrap_servers
        admin.create_topic(bootstrap, "in", partitions=2)
        feed = _Input(bootstrap, workdir, chunks=20 * kills)
        feed.feed()
        state_dir, log = workdir / "state", workdir / "run.log"

        commits = _Commits(bootstrap)
        groups = AdminClient({"bootstrap.servers": bootstrap})  # one client for every look at the group
        killed_at: float | None = None  # the driver's kill, measured once its successor commits
        rounds = max(len(points), (kills - 1) // 2)  # a scripted and a random kill a round; the bounded run's two last
        with feed.running():  # input keeps arriving during the unbounded runs
            for iteration in range(rounds):
                point = points[iteration % len(points)]
                flag = workdir / f"fault-{iteration}"
                # A restore or a revocation is passed once or twice in a run; the others often.
                nth = 1 if point in ("restore", "map-revoked") else rng.randint(1, 3)
                fault = {"MRKAFKA_FAULT": f"{point}:{nth}", "MRKAFKA_FAULT_ONCE": str(flag)}
                # A memory store restores in full at every start: the restore point is then passed.
                state = "memory" if point == "restore" else "rocksdb"
                options = ("--state", state, "--guarantee", guarantee)
                with StreamRun(bootstrap, APP, state_dir, log, *options, env=fault) as run:
                    if killed_at is not None:
                        result.recovery_s.append(commits.next_after(killed_at, run))
                        killed_at = None
                    # A revocation needs a partition to move off a live worker: the random kill comes
                    # first, once both hold a partition, and stalls its map worker until the other
                    # holds both (``_stall_then_kill``); a member killed in the last run still counts
                    # until its session ends.
                    order = ("random", "scripted") if point == "map-revoked" else ("scripted", "random")
                    if point == "map-revoked" and not _until(lambda: _both_assigned(groups), run, 120):
                        raise AssertionError(f"the map workers never both held a partition: {run.tail()}")
                    for kind in order:
                        if kind == "scripted":
                            if not _until(flag.exists, run, FAULT_WAIT_S):
                                raise AssertionError(f"{point} was not reached in {FAULT_WAIT_S:.0f} s: {run.tail()}")
                            name, at = f"point {point}", time.monotonic()
                        else:
                            time.sleep(rng.uniform(0.5, 4.0))
                            at = time.monotonic()
                            if point == "map-revoked":
                                name = f"random {_stall_then_kill(run, groups, rng)}"
                            else:
                                name = f"random {_kill(run, rng.choice(TARGETS), rng)}"
                        result.kills[name] += 1
                        say(f"  kill {sum(result.kills.values())}: {name}")
                        if name == "random driver":
                            killed_at = at
                            break
                        result.recovery_s.append(commits.next_after(at, run))
                    if run.process.poll() is None:
                        code = run.stop()
                        if code != 0:
                            raise AssertionError(f"a graceful stop exited {code}: {run.tail()}")

        # A bounded run killed between a reducer's end and its part file (Ray starts it again and
        # the part is written), then one whose driver dies while committing the output; a new
        # run replaces that output.
        def bounded(output: str, **env: str) -> tuple[int, StreamRun]:
            """A bounded run writing part files to ``workdir/output``: its exit code, and it."""
            options = ("--state", "rocksdb", "--guarantee", guarantee, "--until-end", "--output", str(workdir / output))
            with StreamRun(bootstrap, APP, state_dir, log, *options, "--overwrite", env=env) as run:
                return run.process.wait(timeout=600), run

        for point, output in (("finish", "S1"), ("commit-output", "S")):
            flag = workdir / f"fault-{point}"
            code, run = bounded(output, MRKAFKA_FAULT=f"{point}:1", MRKAFKA_FAULT_ONCE=str(flag))
            if not flag.exists():
                raise AssertionError(f"the bounded run never reached {point}: {run.tail()}")
            result.kills[f"point {point}"] += 1
            say(f"  kill {sum(result.kills.values())}: point {point} (exit {code})")
        code, run = bounded("S")
        if code != 0:
            raise AssertionError(f"the final bounded run exited {code}: {run.tail()}")

        run_batch(
            JobSpec(load_job(WORDCOUNT)),
            BatchSettings(inputs=[str(p) for p in feed.files], output=workdir / "B", runner="inline"),
        )
        compare_with_oracle(bootstrap, workdir, feed.files, result)
    finally:
        cluster.stop()
    result.seconds = time.monotonic() - started
    return result


def compare_with_oracle(
    bootstrap: str, workdir: Path, inputs: list[Path], result: SoakResult, app: str = APP
) -> SoakResult:
    """Fill ``result`` from the part files ``workdir/S`` and app's topics, judged against the
    oracle (``Counter`` over ``bytes.split()`` of ``inputs``), and ``workdir/B`` (batch's)."""
    counts = sum((oracle_wordcount(p.read_bytes()) for p in inputs), collections.Counter())
    expected = {k: b"%d" % n for k, n in counts.items()}
    stream = read_parts(workdir / "S")
    result.keys = len(expected)
    result.differing_parts = sum(stream.get(k) != v for k, v in expected.items()) + len(stream.keys() - expected.keys())
    names = sorted(p.name for p in (workdir / "B").glob("part-r-*"))
    result.parts_identical = names == sorted(p.name for p in (workdir / "S").glob("part-r-*")) and all(
        (workdir / "S" / n).read_bytes() == (workdir / "B" / n).read_bytes() for n in names
    )
    partitions = len(retrying(admin.describe_topic, bootstrap, "out").partitions)
    latest = _latest_per_key(bootstrap, "out", partitions)
    result.differing_topic = sum(latest.get(k) != int(v) for k, v in expected.items()) + len(
        latest.keys() - expected.keys()
    )
    for topic in (f"{app}-repartition", f"{app}-state-changelog", "out"):
        _, stable = retrying(admin.topic_offsets, bootstrap, topic, "read_committed")
        _, high = retrying(admin.topic_offsets, bootstrap, topic)
        if stable != high:
            result.open_transactions.append(topic)
    return result


def _latest_per_key(bootstrap: str, topic: str, partitions: int) -> dict[bytes, int]:
    """Every key's last value in ``topic``, read_committed."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "soak-oracle", "isolation.level": "read_committed"}
    )
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=30)[1] for tp in tps}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        latest: dict[bytes, int] = {}
        idle_since = time.monotonic()
        # An open transaction holds a read_committed reader before the end: a few idle seconds end the read.
        while [tp for tp in consumer.position(tps) if tp.offset < ends[tp.partition]]:
            messages = [m for m in consumer.consume(100_000, 0.5) if m.error() is None]
            for message in messages:
                latest[message.key()] = deserialize_long(message.value())
            if messages:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > 5:
                break
        return latest
    finally:
        consumer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--guarantee", choices=["exactly-once", "at-least-once"], default="exactly-once")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--brokers", type=int, default=1, help="The cluster's size.")
    parser.add_argument("--workdir", type=Path, help="Where the broker, state and outputs go [default: a temp dir].")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mrkafka-soak-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        say = lambda line: print(line, flush=True)  # noqa: E731
        result = soak(workdir, args.kills, args.guarantee, args.seed, say=say, brokers=args.brokers)
    print(result.report())
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
