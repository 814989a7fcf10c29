"""``python -m benchmarks``: word count, mrkafka batch and stream against plain Python.

Each system runs as its own command on the same corpus; the wall time of the whole command,
MB/s and the peak memory of all its processes (Ray's workers included, as proportional set
size so that shared object-store pages count once) are reported, with the ratio to the
baseline. Every system's output is checked against the baseline's counts.

The stream run is bounded (``--until-end``) over a topic of a broker the suite starts and
loads beforehand; the load is reported on a row of its own, and the broker's memory is
counted with the stream run's. Its latency is input record timestamp to output write: for a
topic loaded beforehand, that includes the time records waited in the topic.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from benchmarks.corpus import generate_corpus
from mrkafka.splits import parse_size

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT / "benchmarks" / "data"
JOB = str(ROOT / "jobs" / "wordcount.py")
MRKAFKA = [sys.executable, "-m", "mrkafka.cli"]
SYSTEMS = ("python", "mrkafka-ray", "mrkafka-inline", "mrkafka-stream")


@dataclass
class Result:
    system: str
    seconds: float
    mb_per_s: float
    records_per_s: float
    peak_memory_mib: float
    vs_baseline: float | None
    correct: bool | None  # None: the system writes no output to check
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    note: str = ""


def _tree_pss(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            process = psutil.Process(pid)
            for p in [process, *process.children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    total += p.memory_full_info().pss
    return total


def measure(cmd: list[str], also: list[int] = ()) -> tuple[float, int, subprocess.CompletedProcess]:
    """Wall seconds and peak memory (bytes, summed over the process tree and ``also``) of a command."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_pss([proc.pid, *also]))
            done.wait(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    elapsed = time.monotonic() - started
    done.set()
    sampler.join()
    return elapsed, peak, subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def _read_counts(path: Path) -> dict[bytes, bytes]:
    files = sorted(path.glob("part-r-*")) if path.is_dir() else [path]
    counts = {}
    for f in files:
        for line in f.read_bytes().splitlines():
            key, _, value = line.rpartition(b"\t")
            counts[key] = value
    return counts


def _lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 24), b""))


@contextlib.contextmanager
def _broker(workdir: Path) -> Iterator[object]:
    from mrkafka.kafka.launcher import CONTROLLER_PORT_OFFSET, Cluster, port_free

    port = next(p for p in range(29092, 30000) if port_free(p) and port_free(p + CONTROLLER_PORT_OFFSET))
    cluster = Cluster(workdir / "kafka", 1, port)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


class Bench:
    def __init__(self, corpus: Path, stream_corpus: Path, workdir: Path) -> None:
        self.corpus = corpus
        self.stream_corpus = stream_corpus
        self.workdir = workdir
        self.results: list[Result] = []
        self.reference: dict[bytes, bytes] = {}
        self.baseline_mb_s: float | None = None
        self._lines: dict[Path, int] = {}

    def lines(self, path: Path) -> int:
        if path not in self._lines:
            self._lines[path] = _lines(path)
        return self._lines[path]

    def record(self, system: str, corpus: Path, seconds: float, peak: int, proc: subprocess.CompletedProcess,
               out: Path | None, reference: dict[bytes, bytes] | None = None, **extra) -> Result:  # fmt: skip
        size = corpus.stat().st_size
        mb_s = size / 1e6 / seconds
        if proc.returncode != 0:
            result = Result(system, seconds, 0, 0, peak / 2**20, None, False, note=proc.stderr.decode()[-300:])
        else:
            expected = reference if reference is not None else self.reference
            correct = None if out is None else _read_counts(out) == expected
            ratio = mb_s / self.baseline_mb_s if self.baseline_mb_s else None
            result = Result(system, seconds, mb_s, self.lines(corpus) / seconds, peak / 2**20, ratio, correct, **extra)
        self.results.append(result)
        return result

    def python(self) -> None:
        out = self.workdir / "python"
        seconds, peak, proc = measure([sys.executable, "-m", "benchmarks.baseline", str(self.corpus), str(out)])
        self.reference = _read_counts(out) if proc.returncode == 0 else {}
        self.baseline_mb_s = self.corpus.stat().st_size / 1e6 / seconds
        self.record("python", self.corpus, seconds, peak, proc, None, note="the baseline; the rest checked against it")

    def mrkafka(self, runner: str) -> None:
        out = self.workdir / f"mrkafka-{runner}"
        cmd = [*MRKAFKA, "run", JOB, "--input", str(self.corpus), "--output", str(out), "--runner", runner]
        self.record(f"mrkafka-{runner}", self.corpus, *measure(cmd), out)

    def stream(self) -> None:
        from mrkafka.kafka import admin

        reference = self.reference
        if self.stream_corpus != self.corpus:
            base = self.workdir / "python-stream"
            subprocess.run(
                [sys.executable, "-m", "benchmarks.baseline", str(self.stream_corpus), str(base)], check=True
            )
            reference = _read_counts(base)
        with _broker(self.workdir) as cluster:
            bootstrap = cluster.bootstrap_servers
            broker_pids = list(cluster.pids().values())
            admin.create_topic(bootstrap, "corpus", partitions=2)
            load = [*MRKAFKA, "produce", "--topic", "corpus", "--input", str(self.stream_corpus),
                    "--bootstrap-servers", bootstrap]  # fmt: skip
            self.record("kafka load (produce)", self.stream_corpus, *measure(load, broker_pids), None,
                        note="loading the topic, before the stream run")  # fmt: skip
            out = self.workdir / "mrkafka-stream"
            cmd = [*MRKAFKA, "run", JOB, "--stream", "--input-topic", "corpus", "--application-id", "bench",
                   "--until-end", "--output", str(out), "--bootstrap-servers", bootstrap,
                   "--state-dir", str(self.workdir / "state")]  # fmt: skip
            seconds, peak, proc = measure(cmd, broker_pids)
            match = re.search(rb"latency p50 (\d+) ms, p99 (\d+) ms", proc.stderr)
            p50, p99 = (float(match.group(1)), float(match.group(2))) if match else (None, None)
            self.record("mrkafka-stream", self.stream_corpus, seconds, peak, proc, out, reference,
                        latency_p50_ms=p50, latency_p99_ms=p99,
                        note="bounded (--until-end), broker memory included")  # fmt: skip


def machine() -> dict[str, object]:
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "system": platform.platform(),
    }


def table(bench: Bench, info: dict) -> str:
    size = bench.corpus.stat().st_size / 2**20
    stream = bench.stream_corpus.stat().st_size / 2**20
    lines = [
        f"Word count over {size:.0f} MiB" + (f" ({stream:.0f} MiB for the stream rows)" if stream != size else "")
        + f" on {info['cpus']} CPUs, {info['memory_gib']} GiB ({info['processor']}, Python {info['python']})",
        "",
        "| system | wall s | MB/s | records/s | peak memory MiB | x baseline | latency p50 / p99 ms | output |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]  # fmt: skip
    for r in bench.results:
        ratio = f"{r.vs_baseline:.2f}" if r.vs_baseline else "-"
        latency = f"{r.latency_p50_ms:.0f} / {r.latency_p99_ms:.0f}" if r.latency_p50_ms is not None else "-"
        check = {True: "matches baseline", False: "WRONG", None: "-"}[r.correct] + (f"; {r.note}" if r.note else "")
        lines.append(f"| {r.system} | {r.seconds:.1f} | {r.mb_per_s:.1f} | {r.records_per_s:,.0f} | "
                     f"{r.peak_memory_mib:.0f} | {ratio} | {latency} | {check} |")  # fmt: skip
    return "\n".join(lines)


def _corpus(size_text: str, seed: int) -> Path:
    corpus = DATA / f"corpus-{size_text}-seed{seed}.txt"
    if not corpus.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        print(f"generating {corpus} ...", file=sys.stderr)
        generate_corpus(corpus, parse_size(size_text), seed)
    return corpus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1GiB", help="size of the generated corpus (default 1GiB)")
    parser.add_argument("--input", help="a corpus file to use instead of the generated one")
    parser.add_argument("--stream-size", help="a smaller generated corpus for the stream rows")
    parser.add_argument("--only", help=f"comma-separated systems (of {', '.join(SYSTEMS)}); python always runs")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--results", default=str(RESULTS), help="where the JSON and markdown go")
    args = parser.parse_args(argv)

    corpus = Path(args.input) if args.input else _corpus(args.size, args.seed)
    stream_corpus = _corpus(args.stream_size, args.seed) if args.stream_size else corpus
    wanted = ["python"] + [s for s in (args.only.split(",") if args.only else SYSTEMS) if s != "python"]
    unknown = set(wanted) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems: {', '.join(sorted(unknown))} (known: {', '.join(SYSTEMS)})")

    workdir = Path(tempfile.mkdtemp(prefix="mrkafka-bench-"))
    bench = Bench(corpus, stream_corpus, workdir)
    runs = {"python": bench.python, "mrkafka-ray": lambda: bench.mrkafka("ray"),
            "mrkafka-inline": lambda: bench.mrkafka("inline"), "mrkafka-stream": bench.stream}  # fmt: skip
    try:
        for system in wanted:
            print(f"running {system} ...", file=sys.stderr)
            runs[system]()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    info = machine()
    text = table(bench, info)
    print(text)
    results_dir = Path(args.results)
    results_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{datetime.date.today().isoformat()}-{platform.node() or 'machine'}"
    (results_dir / f"{stem}.json").write_text(
        json.dumps({"machine": info, "corpus_bytes": corpus.stat().st_size, "corpus": str(corpus),
                    "stream_corpus_bytes": stream_corpus.stat().st_size,
                    "results": [asdict(r) for r in bench.results]}, indent=2) + "\n"
    )  # fmt: skip
    (results_dir / f"{stem}.md").write_text(text + "\n")
    return 0 if all(r.correct is not False for r in bench.results) else 1


if __name__ == "__main__":
    sys.exit(main())
