"""``python -m benchmarks.latency``: end-to-end latency of an unbounded stream run under a steady input.

Starts a broker, an unbounded word count stream run (exactly-once, 1 s commit interval:
the defaults) over a topic of 2 partitions, and a producer (confluent-kafka's own, not the
engine's) that writes the lines of the docs corpus at a fixed rate (``--rate``) for
``--seconds``. Every ``--probe-ms`` it also writes a line of one word of its own
(``probe-N``), stamped with the time it is produced; a read_committed consumer of the output
topic notes when ``probe-N``'s count is visible. A probe's latency is that time less its
stamp: from a record's timestamp to committed output, through map, repartition, reduce and
two transactions. Reports p50, p99 and the largest, and the rate the producer kept. The clock
starts after ``--warmup`` seconds of the same input (a broker just started compiles its hot
paths under load, and the first output of every word costs most); those seconds are reported
apart.

    python -m benchmarks.latency --rate 5MB --seconds 60
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer

from benchmarks.corpus import generate_docs_corpus
from benchmarks.security_cost import _free_port
from mrkafka.devtools.launcher import Cluster
from mrkafka.io.splits import parse_size
from mrkafka.kafka import admin

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TICK_S = 0.01  # the producer writes a tick's share of the rate, then sleeps to the next tick


class Probes:
    """When each probe was produced, and when its count was first visible."""

    def __init__(self, name: bytes = b"") -> None:
        self.name = name
        self.sent: dict[bytes, float] = {}
        self.seen: dict[bytes, float] = {}
        self.stop = threading.Event()

    def latencies_ms(self) -> list[float]:
        return sorted((self.seen[key] - sent) * 1000 for key, sent in self.sent.items() if key in self.seen)


def _watch_output(bootstrap: str, topic: str, probes: Probes) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"latency-{os.getpid()}",
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    consumer.subscribe([topic])
    try:
        while not probes.stop.is_set():
            for message in consumer.consume(10_000, 0.05):
                key = message.key()
                if message.error() is None and key and key.startswith(b"probe-") and key not in probes.seen:
                    probes.seen[key] = time.time()
    finally:
        consumer.close()


def _produce(
    bootstrap: str, topic: str, lines: list[bytes], rate: float, seconds: float, probes: Probes, probe_s: float
) -> int:
    """Lines at ``rate`` bytes/s for ``seconds``, a probe every ``probe_s``; the bytes written."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 5,
            "enable.idempotence": True,
            "queue.buffering.max.messages": 1 << 20,
        }
    )
    started = next_probe = time.time()
    written, at, n = 0, 0, 0
    while (now := time.time()) < started + seconds:
        while written < rate * (now - started):
            line = lines[at % len(lines)]
            try:
                producer.produce(topic, line, partition=at % 2)
            except BufferError:  # the run's broker is behind: wait for deliveries, keep the rate asked
                producer.poll(0.01)
                continue
            written, at = written + len(line), at + 1
        if now >= next_probe:
            key = b"probe-%s%06d" % (probes.name, n)
            probes.sent[key] = time.time()
            producer.produce(topic, key, partition=n % 2, timestamp=int(probes.sent[key] * 1000))
            next_probe, n = next_probe + probe_s, n + 1
        producer.poll(0)
        time.sleep(TICK_S)
    producer.flush(30)
    return written


def _wait_for(probes: Probes, timeout: float) -> None:
    """Until every probe sent is seen."""
    deadline = time.time() + timeout
    while missing := probes.sent.keys() - probes.seen.keys():
        if time.time() > deadline:
            raise SystemExit(f"the run did not count {min(missing)!r} within {timeout:.0f} s")
        time.sleep(0.05)


def _summary(probes: Probes) -> str:
    latencies = probes.latencies_ms()
    if not latencies:
        return "no probes"
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    median = statistics.median(latencies)
    return f"{len(latencies)} probes, latency p50 {median:.0f} ms, p99 {p99:.0f} ms, max {latencies[-1]:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", default="5MB", help="input bytes a second (default 5MB)")
    parser.add_argument("--seconds", type=float, default=60, help="how long the steady input lasts")
    parser.add_argument("--probe-ms", type=float, default=100, help="a probe record every this many ms")
    parser.add_argument(
        "--warmup", type=float, default=10, help="seconds of the same input before the clock starts (default 10)"
    )
    parser.add_argument("--guarantee", default="exactly-once", choices=["exactly-once", "at-least-once"])
    args = parser.parse_args()
    rate = parse_size(args.rate)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        corpus = generate_docs_corpus(scratch / "docs.txt", min(int(rate * args.seconds), 64 << 20))
        lines = [line for line in corpus.read_bytes().split(b"\n") if line]
        cluster = Cluster(scratch / "kafka", port=_free_port(18000))
        cluster.start()
        run = None
        probes, warm = Probes(), Probes(b"warm-")  # the steady input for a while before the clock starts
        try:
            bootstrap, app = cluster.bootstrap_servers, "latency"
            admin.create_topic(bootstrap, "lines", partitions=2)
            admin.create_topic(bootstrap, f"{app}-output", partitions=2)
            watcher = threading.Thread(target=_watch_output, args=(bootstrap, f"{app}-output", probes), daemon=True)
            watcher.start()
            run = subprocess.Popen(
                [sys.executable, "-m", "mrkafka.cli", "run", str(ROOT / "jobs" / "wordcount.py"), "--stream"]
                + ["--input-topic", "lines", "--application-id", app, "--bootstrap-servers", bootstrap]
                + ["--state-dir", str(scratch / "state"), "--guarantee", args.guarantee],
                env={**os.environ, "RAY_ADDRESS": ""},
                start_new_session=True,
            )
            up = Probes(b"up-")  # one probe through the whole path: the run is up
            up.seen = warm.seen = probes.seen
            _produce(bootstrap, "lines", lines, 0, 0.001, up, 1)
            _wait_for(up, 180)
            _produce(bootstrap, "lines", lines, rate, args.warmup, warm, args.probe_ms / 1000)
            started = time.time()
            written = _produce(bootstrap, "lines", lines, rate, args.seconds, probes, args.probe_ms / 1000)
            kept = written / (time.time() - started)
            _wait_for(warm, 120)
            _wait_for(probes, 120)
        finally:
            probes.stop.set()
            if run is not None:
                os.killpg(run.pid, signal.SIGTERM)
                try:
                    run.wait(60)
                except subprocess.TimeoutExpired:
                    os.killpg(run.pid, signal.SIGKILL)
            cluster.stop()
    text = (
        f"unbounded word count, {args.guarantee}, 2 partitions, one broker; input {rate / 1e6:.1f} MB/s asked, "
        f"{kept / 1e6:.2f} MB/s kept for {args.seconds:.0f} s (docs corpus lines), after {args.warmup:.0f} s of "
        f"the same: {_summary(probes)}; during those first {args.warmup:.0f} s: {_summary(warm)}\n"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"latency-{args.rate}-{args.guarantee}.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
