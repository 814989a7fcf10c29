"""``python -m benchmarks.security_cost``: what TLS, SASL/SCRAM and mutual TLS cost.

Starts one broker per security mode (plaintext, ssl, sasl_ssl, mtls), side by side, and in
each round, in an order that turns from round to round, for each mode: produces the docs corpus
(this machine's package documentation) to a new topic of 2 partitions (timed in process: the
produce throughput), then runs a bounded word count stream run over it as a whole command (timed
from its start until its group committed every input record). Every client is the cluster's
admin, with its ``admin.properties``. Reports the median of each mode and its cost against
plaintext.

    python -m benchmarks.security_cost --size 48MiB --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.corpus import generate_docs_corpus
from benchmarks.stream_runs import seconds_to_commit
from mrkafka.devtools.console import produce_lines
from mrkafka.devtools.launcher import CONTROLLER_PORT_OFFSET, INTERNAL_PORT_OFFSET, Cluster
from mrkafka.devtools.processes import port_free
from mrkafka.io.splits import parse_size
from mrkafka.kafka import admin
from mrkafka.kafka.security import MODES

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def _free_port(start: int) -> int:
    offsets = (0, CONTROLLER_PORT_OFFSET, INTERNAL_PORT_OFFSET)
    return next(port for port in range(start, start + 1000) if all(port_free(port + o) for o in offsets))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="16MiB", help="input size")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (each mode once per round)")
    args = parser.parse_args()
    size = parse_size(args.size)
    produce: dict[str, list[float]] = {mode: [] for mode in MODES}
    stream: dict[str, list[float]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        corpus = scratch / "docs.txt"
        generate_docs_corpus(corpus, size)
        megabytes = corpus.stat().st_size / 1e6
        clusters: dict[str, Cluster] = {}
        try:
            port = 17000
            for mode in MODES:
                port = _free_port(port)
                clusters[mode] = Cluster(scratch / mode, port=port, security=mode)
                clusters[mode].start()
                port += INTERNAL_PORT_OFFSET + 1
            for round_ in range(args.rounds):
                order = MODES[round_ % len(MODES) :] + MODES[: round_ % len(MODES)]
                for mode in order:
                    cluster, topic = clusters[mode], f"lines-{round_}"
                    security = cluster.admin_security()
                    admin.create_topic(cluster.bootstrap_servers, topic, partitions=2, security=security)
                    started = time.monotonic()
                    records = produce_lines(
                        cluster.bootstrap_servers, topic, str(corpus), progress=False, security=security
                    )
                    produce[mode].append(time.monotonic() - started)
                    options = ["--command-config", str(cluster.admin_config)] if cluster.secured else []
                    app, state = f"bench-{round_}", scratch / "state"
                    stream[mode].append(
                        seconds_to_commit(
                            cluster.bootstrap_servers, topic, app, state, records, *options, security=security
                        )
                    )
                    print(
                        f"round {round_} {mode}: produce {produce[mode][-1]:.2f} s, stream {stream[mode][-1]:.2f} s",
                        file=sys.stderr,
                    )
        finally:
            for cluster in clusters.values():
                cluster.stop()
    base_produce, base_stream = statistics.median(produce["plaintext"]), statistics.median(stream["plaintext"])
    lines = [
        f"corpus: {megabytes:.1f} MB of package documentation, {records:,} records, 2 partitions, one broker per "
        f"mode, clients as the admin; median of {args.rounds} rounds (modes in a turning order)",
        "",
        "| mode | produce | produce MB/s | vs plaintext | stream run, to commit all input | vs plaintext |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for mode in MODES:
        p, s = statistics.median(produce[mode]), statistics.median(stream[mode])
        lines.append(
            f"| {mode} | {p:.2f} s | {megabytes / p:.1f} | {(p / base_produce - 1) * 100:+.0f}% "
            f"| {s:.2f} s | {(s / base_stream - 1) * 100:+.0f}% |"
        )
    lines += ["", "runs (produce / stream, seconds):"]
    lines += [
        f"- {mode}: {', '.join(f'{p:.2f}/{s:.2f}' for p, s in zip(produce[mode], stream[mode]))}" for mode in MODES
    ]
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"security-cost-{args.size}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
