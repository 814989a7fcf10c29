"""``python -m benchmarks.metrics_overhead``: what ``--metrics-port`` costs a stream run.

Starts a broker of its own and a Prometheus (``mrkafka monitor``, scraping every second),
loads a topic (2 partitions) with the docs corpus (this machine's package documentation),
then times bounded word count stream runs over it, alternating runs without and with
``--metrics-port 0`` (each a whole command, under its own application id, so each reads the
whole topic; timed from its start until its group committed every input record), and
reports the median of each and the difference.

    python -m benchmarks.metrics_overhead --size 16MiB --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.corpus import generate_docs_corpus
from benchmarks.stream_runs import seconds_to_commit
from mrkafka.devtools.console import produce_lines
from mrkafka.devtools.launcher import Cluster
from mrkafka.devtools.monitor import Monitor
from mrkafka.devtools.processes import port_free
from mrkafka.io.splits import parse_size
from mrkafka.kafka import admin

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def _free_port(start: int) -> int:
    return next(port for port in range(start, start + 1000) if port_free(port) and port_free(port + 100))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="16MiB", help="input size")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each kind")
    args = parser.parse_args()
    size = parse_size(args.size)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        os.environ["MRKAFKA_MONITOR_DIR"] = str(scratch / "monitor")
        corpus = scratch / "docs.txt"
        generate_docs_corpus(corpus, size)
        megabytes = corpus.stat().st_size / 1e6
        cluster = Cluster(scratch / "kafka", port=_free_port(17000))
        monitor = Monitor(scratch / "monitor")
        try:
            bootstrap = cluster.start()
            admin.create_topic(bootstrap, "lines", partitions=2)
            records = produce_lines(bootstrap, "lines", str(corpus), progress=False)
            monitor.up(port=_free_port(17500), scrape_interval="1s")
            times: dict[bool, list[float]] = {False: [], True: []}
            for round_ in range(args.rounds):
                for metrics in (False, True) if round_ % 2 == 0 else (True, False):  # ABBA: drift cancels
                    app = f"bench-{round_}-{'metrics' if metrics else 'plain'}"
                    options = ["--metrics-port", "0"] if metrics else []
                    times[metrics].append(
                        seconds_to_commit(bootstrap, "lines", app, scratch / "state", records, *options)
                    )
                    print(
                        f"round {round_}: {'with' if metrics else 'without'} metrics {times[metrics][-1]:.2f} s",
                        file=sys.stderr,
                    )
        finally:
            monitor.down()
            cluster.stop()
    plain, measured = statistics.median(times[False]), statistics.median(times[True])
    lines = [
        f"corpus: {megabytes:.1f} MB of package documentation, {records:,} records, 2 partitions; "
        f"bounded word count stream runs, from the command's start until every input record is committed, "
        f"median of {args.rounds}",
        "",
        "| run | to commit all input | records/s |",
        "|---|---:|---:|",
        f"| without --metrics-port | {plain:.2f} s | {records / plain:,.0f} |",
        f"| with --metrics-port, scraped every second | {measured:.2f} s | {records / measured:,.0f} |",
        "",
        f"overhead: {(measured / plain - 1) * 100:+.1f}% of the time "
        f"(runs: without {', '.join(f'{t:.2f}' for t in times[False])} s; "
        f"with {', '.join(f'{t:.2f}' for t in times[True])} s)",
    ]
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"metrics-overhead-{args.size}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
