"""``python -m benchmarks.distinct_keys``: a stream run over many distinct keys, and its restore.

Writes ``--keys`` distinct words (12 hexadecimal characters each, ten a line, each once),
starts a broker, produces them to a topic of 2 partitions, and runs word count over them:
as a batch run, then as a bounded stream run into ``--reducers`` reducers (memory store),
then again as the same application with nothing left to read, so that its reducers only
restore their stores from the changelog. The stream runs' part files must equal the batch
run's byte for byte. Reports each run's time and peak memory (the command's process tree,
the broker's not included); the restore is the second stream run less a run of an empty topic.

    python -m benchmarks.distinct_keys --keys 10000000 --reducers 1
"""

from __future__ import annotations

import argparse
import filecmp
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.__main__ import measure
from benchmarks.security_cost import _free_port
from mrkafka.devtools.launcher import Cluster
from mrkafka.kafka import admin

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
MRKAFKA = [sys.executable, "-m", "mrkafka.cli"]
JOB = str(ROOT / "jobs" / "wordcount.py")
HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


def write_tokens(path: Path, keys: int, per_line: int = 10) -> None:
    """``keys`` distinct 12-hex-digit words: n times an odd number, modulo 2**48, is one to one."""
    with open(path, "wb") as f:
        for start in range(0, keys, 1_000_000):
            n = np.arange(start, min(keys, start + 1_000_000), dtype=np.uint64)
            values = (n * np.uint64(0x9E3779B97F4B)) & np.uint64(2**48 - 1)
            digits = (values[:, None] >> (np.arange(44, -1, -4, dtype=np.uint64))) & np.uint64(15)
            words = np.concatenate([HEX[digits], np.full((len(n), 1), ord(" "), np.uint8)], axis=1)
            words[per_line - 1 :: per_line, -1] = ord("\n")
            words[-1, -1] = ord("\n")
            f.write(words.tobytes())


def _run(name: str, args: list[str], also: list[int]) -> tuple[float, int]:
    run = measure([*MRKAFKA, *args], also)
    seconds, peak, proc = run.seconds, run.peak, run.proc
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed (exit {proc.returncode}): {proc.stderr.decode(errors='replace')[-2000:]}")
    print(f"{name}: {seconds:.1f} s, peak {peak / 2**20:.0f} MiB", file=sys.stderr)
    return seconds, peak


def _same_parts(left: Path, right: Path) -> None:
    parts = sorted(p.name for p in left.glob("part-r-*"))
    if parts != sorted(p.name for p in right.glob("part-r-*")):
        raise SystemExit(f"{left} and {right} hold other part files")
    match, mismatch, errors = filecmp.cmpfiles(left, right, parts, shallow=False)
    if mismatch or errors:
        raise SystemExit(f"part files differ between {left} and {right}: {mismatch + errors}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=10_000_000)
    parser.add_argument("--reducers", type=int, default=1)
    args = parser.parse_args()
    os.environ["RAY_ADDRESS"] = ""
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        tokens = scratch / "tokens.txt"
        write_tokens(tokens, args.keys)
        cluster = Cluster(scratch / "kafka", port=_free_port(18500))
        cluster.start()
        try:
            bootstrap = cluster.bootstrap_servers
            for topic in ("tokens", "empty"):
                admin.create_topic(bootstrap, topic, partitions=2)
            _run(
                "produce",
                ["produce", "--topic", "tokens", "--input", str(tokens), "--bootstrap-servers", bootstrap],
                [],
            )
            reducers = ["--reducers", str(args.reducers)]
            batch = _run(
                "batch", ["run", JOB, "--input", str(tokens), "--output", str(scratch / "batch"), *reducers], []
            )
            common = ["--stream", "--until-end", "--bootstrap-servers", bootstrap, "--state-dir", str(scratch / "s")]
            results = {"batch": batch}
            for name, topic, app, out in (
                ("stream", "tokens", "keys", "stream"),
                ("stream, restore only", "tokens", "keys", "restored"),
                ("stream, empty topic", "empty", "empty", "empty"),
            ):
                run = ["run", JOB, *common, "--input-topic", topic, "--application-id", app]
                results[name] = _run(name, [*run, "--output", str(scratch / out), *reducers], [])
            _same_parts(scratch / "batch", scratch / "stream")
            _same_parts(scratch / "batch", scratch / "restored")
        finally:
            cluster.stop()
    restore = results["stream, restore only"][0] - results["stream, empty topic"][0]
    lines = [
        f"{args.keys:,} distinct 12-hex-digit words, once each, 2 input partitions, {args.reducers} reducer(s), "
        "memory store; part files of both stream runs equal batch's byte for byte",
        "",
        "| run | seconds | peak memory |",
        "|---|---:|---:|",
        *(f"| {name} | {s:.1f} | {peak / 2**20:,.0f} MiB |" for name, (s, peak) in results.items()),
        "",
        f"restore of {args.keys:,} keys: {restore:.1f} s (restore-only run less the empty-topic run)",
    ]
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"distinct-keys-{args.keys}.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
