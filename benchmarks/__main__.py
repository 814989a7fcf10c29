"""``python -m benchmarks``: word count, mrkafka batch and stream against plain Python.

Each system runs as its own command on the same corpus; the wall time of the whole command,
MB/s, the CPU time of its processes and MB per CPU second (how fast each core it kept busy
went), and the peak memory of all its processes (Ray's workers included, as proportional set
size so that shared object-store pages count once) are reported, with the ratio to the
baseline. Every system's output is checked against the baseline's counts. A plain C word
count (``benchmarks/peers/wc.c``, one thread) anchors the table to what the machine does.

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
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from benchmarks.corpus import generate_corpus, generate_docs_corpus
from benchmarks.oracles import derive, hadoop_counts, java_split_empty_words
from mrkafka.io.splits import parse_size

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT / "benchmarks" / "data"
JOB = str(ROOT / "jobs" / "wordcount.py")
MRKAFKA = [sys.executable, "-m", "mrkafka.cli"]
DEMO_PARAMS = ["-p", "lower=true", "-p", "pattern=\\W+"]
SYSTEMS = (
    "python",
    "pyarrow",
    "c",
    "dask",
    "ray-data",
    "pyspark",
    "hadoop",
    "mrkafka-local",
    "mrkafka-ray",
    "mrkafka-inline",
    "mrkafka-stream",
    "mrkafka-stream-at-least-once",
    "mrkafka-stream-demo",
    "kafka-streams-demo",
    "kafka-streams-demo-tuned",
)
# WordCountDemo's fixed topic names and application id.
DEMO_INPUT, DEMO_OUTPUT, DEMO_APP = "streams-plaintext-input", "streams-wordcount-output", "streams-wordcount"
#: What a Kafka Streams user sets for throughput (the demo's properties file wins over its defaults).
TUNED_STREAMS = {
    "statestore.cache.max.bytes": 64 << 20,
    "producer.linger.ms": 50,
    "producer.batch.size": 1 << 20,
}


@dataclass
class Result:
    system: str
    tokenizer: str
    seconds: float
    mb_per_s: float
    records_per_s: float
    peak_memory_mib: float
    vs_baseline: float | None
    correct: bool | None  # None: the system writes no output to check
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    note: str = ""
    #: CPU seconds of the command's processes (those it waited for, and theirs).
    cpu_seconds: float | None = None


def _tree(pid: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
        process = psutil.Process(pid)
        return [process, *process.children(recursive=True)]
    return []


class Sampler:
    """Four times a second: the summed memory of some process trees (its peak), and the CPU
    time of each process of the first tree (the last seen). Made once the command started,
    before anyone waits for it."""

    def __init__(self, pids: list[int]) -> None:
        self._reaped = _children_cpu()
        self.pids = list(pids)
        self.peak = 0
        self.cpu: dict[tuple[int, float], float] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            total = 0
            for i, pid in enumerate(self.pids):
                for p in _tree(pid):
                    with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                        total += p.memory_full_info().pss
                        if i == 0:
                            times = p.cpu_times()
                            self.cpu[p.pid, p.create_time()] = times.user + times.system
            self.peak = max(self.peak, total)
            self._done.wait(0.25)

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return self.peak

    def cpu_seconds(self) -> float:
        """Once the command was waited for: the CPU time of it and of the processes it waited
        for, or, where more (the daemons Ray starts, which nobody waits for), the sum sampled."""
        return max(_children_cpu() - self._reaped, sum(self.cpu.values()))


@dataclass
class Measured:
    seconds: float
    peak: int  # bytes, summed over the process tree and the processes watched beside it
    proc: subprocess.CompletedProcess
    #: User and system time of the command and the processes it waited for, or where more (the
    #: daemons Ray starts, which nobody waits for) the sum sampled over its process tree.
    cpu_seconds: float


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(cmd: list[str], also: list[int] = ()) -> Measured:
    """Wall seconds, peak memory and CPU time of a command (``also``: more processes whose
    memory counts, such as a broker)."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sampler = Sampler([proc.pid, *also])
    stdout, stderr = proc.communicate()
    elapsed = time.monotonic() - started
    completed = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    return Measured(elapsed, sampler.stop(), completed, sampler.cpu_seconds())


def read_counts(path: Path) -> dict[bytes, int]:
    files = sorted(path.glob("part-r-*")) if path.is_dir() else [path]
    counts = {}
    for f in files:
        for line in f.read_bytes().splitlines():
            key, _, value = line.rpartition(b"\t")
            counts[key] = int(value)
    return counts


def _lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 24), b""))


def _difference(expected: dict[bytes, int], got: dict[bytes, int]) -> str:
    """How an output differs from what was expected: how many keys, and the first few."""
    keys = sorted(k for k in expected.keys() | got.keys() if expected.get(k) != got.get(k))
    shown = ", ".join(f"{k[:30]!r}: {expected.get(k)} expected, {got.get(k)} written" for k in keys[:3])
    return f"{len(keys):,} keys differ ({shown})"


def _error_line(stderr: bytes) -> str:
    lines = stderr.decode(errors="replace").strip().splitlines() or [""]
    errors = [line for line in lines if "Error" in line or "error" in line]
    return (errors or lines)[-1].strip()[:200]


def _latest(bootstrap: str, topic: str, starts: dict[int, int]) -> dict[bytes, int]:
    """The latest value of every key written to ``topic`` from offsets ``starts`` on (one per
    partition), values read as Kafka longs."""
    from confluent_kafka import Consumer, TopicPartition

    from mrkafka.core.serdes import deserialize_long

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-oracle", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, p, offset) for p, offset in starts.items()])
        latest: dict[bytes, int] = {}
        idle = 0
        while idle < 10:
            messages = [m for m in consumer.consume(100_000, 0.5) if m.error() is None]
            idle = 0 if messages else idle + 1
            for message in messages:
                latest[message.key()] = deserialize_long(message.value())
        return latest
    finally:
        consumer.close()


class Bench:
    def __init__(self, corpus: Path, stream_corpus: Path, workdir: Path) -> None:
        self.corpus = corpus
        self.stream_corpus = stream_corpus
        self.workdir = workdir
        self.results: list[Result] = []
        self.baseline: dict[bytes, int] = {}
        self.stream_baseline: dict[bytes, int] | None = None
        self.baseline_mb_s: float | None = None
        self._lines: dict[Path, int] = {}
        self._kafka = contextlib.ExitStack()
        self.cluster = None

    def close(self) -> None:
        self._kafka.close()

    def lines(self, path: Path) -> int:
        if path not in self._lines:
            self._lines[path] = _lines(path)
        return self._lines[path]

    def record(
        self,
        system: str,
        corpus: Path,
        run: Measured,
        out: Path | None,
        tokenizer: str = "bytes.split",
        expected: dict[bytes, int] | None = None,
        **extra,
    ) -> Result:
        size = corpus.stat().st_size
        seconds, peak = run.seconds, run.peak
        if run.proc.returncode != 0:
            error = _error_line(run.proc.stderr)
            result = Result(system, tokenizer, seconds, 0, 0, peak / 2**20, None, False, note=f"failed: {error}")
        else:
            if out is None:
                correct = None
            else:
                base = self.baseline if corpus == self.corpus else self.stream_baseline
                expected = expected or derive(base, tokenizer)
                got = read_counts(out)
                correct = got == expected
                if not correct:
                    extra["note"] = f"{_difference(expected, got)}; {extra.get('note', '')}"
            mb_s = size / 1e6 / seconds
            ratio = mb_s / self.baseline_mb_s if self.baseline_mb_s else None
            result = Result(
                system,
                tokenizer,
                seconds,
                mb_s,
                self.lines(corpus) / seconds,
                peak / 2**20,
                ratio,
                correct,
                cpu_seconds=run.cpu_seconds,
                **extra,
            )
        self.results.append(result)
        return result

    def run(self, system: str, cmd: list[str], out: Path | None, corpus: Path | None = None, also=(), **kw):
        run = measure(cmd, list(also))
        return self.record(system, corpus or self.corpus, run, out, **kw), run.proc

    # -- single-machine word counts ---------------------------------------------------------------

    def python(self) -> None:
        out = self.workdir / "python"
        cmd = [sys.executable, "-m", "benchmarks.baseline", str(self.corpus), str(out)]
        result, _ = self.run("python", cmd, None, note="the baseline; every output is checked against it")
        self.baseline = read_counts(out)
        self.baseline_mb_s = result.mb_per_s
        result.vs_baseline = 1.0
        if self.stream_corpus != self.corpus:
            out = self.workdir / "python-stream"
            subprocess.run([sys.executable, "-m", "benchmarks.baseline", str(self.stream_corpus), str(out)], check=True)
            self.stream_baseline = read_counts(out)
        else:
            self.stream_baseline = self.baseline

    def peer(
        self, system: str, module: str, tokenizer: str = "bytes.split", corpus: Path | None = None, note: str = ""
    ) -> Result:
        out = self.workdir / system
        cmd = [sys.executable, "-m", f"benchmarks.peers.{module}", str(corpus or self.corpus), str(out)]
        return self.run(system, cmd, out, corpus, tokenizer=tokenizer, note=note)[0]

    def pyarrow(self) -> None:
        self.peer("pyarrow", "pyarrow_wc", note="single process")

    def c(self) -> None:
        """The physical anchor: ``benchmarks/peers/wc.c``, built with the system's ``cc`` (not timed)."""
        compiler = shutil.which("cc")
        if compiler is None:
            print("c: skipped, this machine has no C compiler (cc)", file=sys.stderr)
            return
        binary = self.workdir / "wc"
        subprocess.run([compiler, "-O2", "-o", str(binary), str(ROOT / "benchmarks" / "peers" / "wc.c")], check=True)
        out = self.workdir / "c"
        self.run("c", [str(binary), str(self.corpus), str(out)], out, note="plain C, one thread (cc -O2)")

    def dask(self) -> None:
        self.peer("dask", "dask_wc", note="dask bag, multiprocessing scheduler")

    def ray_data(self) -> None:
        first = self.peer("ray-data", "raydata_wc")
        if first.correct is not False or not first.note.startswith("failed"):
            return
        cleaned = self.workdir / "corpus-utf8.txt"
        with open(self.corpus, "rb") as src, open(cleaned, "wb") as dst:
            for chunk in iter(lambda: src.read(1 << 24), b""):
                dst.write(chunk.decode("utf-8", "replace").encode())  # chunks end anywhere: fine for \xe9
        base = derive(self.baseline, "utf-8 replace, split")
        out = self.workdir / "ray-data-utf8"
        cmd = [sys.executable, "-m", "benchmarks.peers.raydata_wc", str(cleaned), str(out)]
        self.record(
            "ray-data",
            self.corpus,
            measure(cmd),
            out,
            tokenizer="utf-8 replace, split",
            expected=base,
            note="on a UTF-8-cleaned copy",
        )

    def pyspark(self) -> None:
        self.peer("pyspark", "pyspark_wc", tokenizer="utf-8 replace, split", note="local[N], DataFrame API")

    def hadoop(self) -> None:
        out = self.workdir / "hadoop"
        cmd = [sys.executable, "-m", "benchmarks.peers.hadoop_wc", str(self.corpus), str(out)]
        note = f"Hadoop 3.4.1 WordCount, local mode, 1 reducer, map tasks {os.cpu_count()} at a time"
        self.run(
            "hadoop",
            cmd,
            out,
            tokenizer="StringTokenizer, utf-8 replace",
            expected=hadoop_counts(self.baseline, self.corpus),
            note=note,
        )

    def mrkafka(self, runner: str) -> None:
        out = self.workdir / f"mrkafka-{runner}"
        cmd = [*MRKAFKA, "run", JOB, "--input", str(self.corpus), "--output", str(out), "--runner", runner]
        self.run(f"mrkafka-{runner}", cmd, out)

    # -- streams, over one topic of a broker the suite starts ---------------------------------------

    def kafka(self):
        """The broker, with the stream corpus loaded into WordCountDemo's input topic (once)."""
        if self.cluster is None:
            from mrkafka.devtools.launcher import CONTROLLER_PORT_OFFSET, Cluster
            from mrkafka.devtools.processes import port_free
            from mrkafka.kafka import admin

            port = next(p for p in range(29092, 30000) if port_free(p) and port_free(p + CONTROLLER_PORT_OFFSET))
            cluster = Cluster(self.workdir / "kafka", 1, port)
            cluster.start()
            self._kafka.callback(cluster.stop)
            self.cluster = cluster
            admin.create_topic(cluster.bootstrap_servers, DEMO_INPUT, partitions=2)
            admin.create_topic(cluster.bootstrap_servers, DEMO_OUTPUT, partitions=2)
            load = [
                *MRKAFKA,
                "produce",
                "--topic",
                DEMO_INPUT,
                "--input",
                str(self.stream_corpus),
                "--bootstrap-servers",
                cluster.bootstrap_servers,
            ]
            self.run(
                "kafka load (produce)",
                load,
                None,
                self.stream_corpus,
                self.broker_pids(),
                note="mrkafka produce, before the stream runs",
            )
        return self.cluster

    def broker_pids(self) -> list[int]:
        return list(self.cluster.pids().values())

    def mrkafka_stream(self, demo: bool, guarantee: str = "exactly-once") -> None:
        bootstrap = self.kafka().bootstrap_servers
        system = "mrkafka-stream-demo" if demo else "mrkafka-stream"
        system += "" if guarantee == "exactly-once" else f"-{guarantee}"
        out = self.workdir / f"{system}-{len(self.results)}"
        # An application of its own per run: a system asked for twice runs twice, from the start.
        cmd = [
            *MRKAFKA,
            "run",
            JOB,
            "--stream",
            "--input-topic",
            DEMO_INPUT,
            "--application-id",
            out.name,
            "--until-end",
            "--output",
            str(out),
            "--bootstrap-servers",
            bootstrap,
            "--guarantee",
            guarantee,
            "--state-dir",
            str(self.workdir / "state"),
            *(DEMO_PARAMS if demo else []),
        ]
        run = measure(cmd, self.broker_pids())
        match = re.search(rb"latency p50 (\d+) ms, p99 (\d+) ms", run.proc.stderr)
        p50, p99 = (float(match.group(1)), float(match.group(2))) if match else (None, None)
        self.record(
            system,
            self.stream_corpus,
            run,
            out,
            tokenizer="lower, \\W+" if demo else "bytes.split",
            latency_p50_ms=p50,
            latency_p99_ms=p99,
            note=f"bounded (--until-end), {guarantee}; the broker's memory included",
        )

    @staticmethod
    def _demo_caught_up(bootstrap: str, app: str, input_ends: dict[int, int]) -> bool:
        """WordCountDemo committed the input's end, and then the end of its repartition topic:
        it commits input offsets once words reach its repartition topic, before counting them."""
        from mrkafka.kafka import admin

        committed = admin.committed_offsets(bootstrap, app, DEMO_INPUT)
        if not all(committed.get(p, 0) >= end for p, end in input_ends.items()):
            return False
        for topic in admin.list_topics(bootstrap):
            if topic.startswith(f"{app}-") and topic.endswith("-repartition"):
                _, ends = admin.topic_offsets(bootstrap, topic)
                committed = admin.committed_offsets(bootstrap, app, topic)
                if not all(committed.get(p, 0) >= end for p, end in ends.items()):
                    return False
        return True

    def kafka_streams_demo(self, tuned: bool = False) -> None:
        """WordCountDemo on the same topic, timed until its group committed the input's end offsets.

        As shipped, the demo turns the record cache off (``statestore.cache.max.bytes=0``, "for
        the demo"), so every count update goes downstream. ``tuned`` runs it as one would for
        throughput: its properties file (which the demo's defaults do not override) turns a
        64 MiB record cache on, so a key's updates fold into one per commit, and lets the
        producers fill 1 MiB batches for up to 50 ms."""
        from mrkafka.devtools.jars import cache_root, java_command, resolve_maven_project
        from mrkafka.kafka import admin

        cluster = self.kafka()
        bootstrap = cluster.bootstrap_servers
        pom = ROOT / "benchmarks" / "kafka-streams" / "pom.xml"
        lib = resolve_maven_project(pom, cache_root() / "kafka-streams-examples-4.3.1", "kafka-streams-examples-*.jar")
        system = "kafka-streams-demo" + ("-tuned" if tuned else "")
        app = f"{DEMO_APP}-{len(self.results)}"  # a run of its own, from the start of the input
        props = self.workdir / f"{system}.properties"
        settings = {
            "application.id": app,
            "bootstrap.servers": bootstrap,
            "commit.interval.ms": 1000,
            "num.stream.threads": 2,
            "state.dir": self.workdir / f"kstreams-state-{app}",
        }
        if tuned:
            settings.update(TUNED_STREAMS)
        props.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
        _, ends = admin.topic_offsets(bootstrap, DEMO_INPUT)
        _, output_starts = admin.topic_offsets(bootstrap, DEMO_OUTPUT)  # where this run's output begins
        cmd = [
            java_command(),
            "-Xmx1g",
            "-cp",
            f"{lib}/*",
            "org.apache.kafka.streams.examples.wordcount.WordCountDemo",
            str(props),
        ]
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        sampler = Sampler([proc.pid, *self.broker_pids()])
        try:
            while proc.poll() is None and not self._demo_caught_up(bootstrap, app, ends):
                time.sleep(0.2)
            seconds = time.monotonic() - started
        finally:
            proc.terminate()
            _, stderr = proc.communicate(timeout=60)
        peak = sampler.stop()
        out = self.workdir / f"{system}.txt"
        latest = _latest(bootstrap, DEMO_OUTPUT, output_starts)
        out.write_bytes(b"".join(k + b"\t%d\n" % v for k, v in latest.items()))
        returncode = 0 if proc.returncode in (0, -15, 143) else proc.returncode
        completed = subprocess.CompletedProcess(cmd, returncode, b"", stderr)
        run = Measured(seconds, peak, completed, sampler.cpu_seconds())
        expected = derive(self.stream_baseline, "Java lower, \\W+")
        empty = java_split_empty_words(self.stream_corpus)
        if empty:
            expected[b""] = empty
        how = "64 MiB record cache, producer batches of 1 MiB / 50 ms" if tuned else "as shipped: no record cache"
        self.record(
            system,
            self.stream_corpus,
            run,
            out,
            tokenizer="Java lower, split(\\W+)",
            expected=expected,
            note=f"WordCountDemo, {how}, 2 stream threads, commit 1 s; timed until it committed the "
            f"input's end; the broker's memory included; {empty:,} empty words",
        )


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
        f"Word count over {size:.0f} MiB"
        + (f" ({stream:.0f} MiB for the Kafka rows)" if stream != size else "")
        + f" on {info['cpus']} CPUs, {info['memory_gib']} GiB ({info['processor']}, Python {info['python']})",
        "",
        "| system | tokenizer | wall s | MB/s | CPU s | MB/s per core | records/s | peak memory MiB | x baseline "
        "| latency p50 / p99 ms | output | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in bench.results:
        ratio = f"{r.vs_baseline:.2f}" if r.vs_baseline else "-"
        latency = f"{r.latency_p50_ms:.0f} / {r.latency_p99_ms:.0f}" if r.latency_p50_ms is not None else "-"
        check = {True: "matches", False: "WRONG" if not r.note.startswith("failed") else "-", None: "-"}[r.correct]
        cpu = f"{r.cpu_seconds:.1f}" if r.cpu_seconds else "-"
        per_core = f"{r.mb_per_s * r.seconds / r.cpu_seconds:.1f}" if r.cpu_seconds and r.mb_per_s else "-"
        lines.append(
            f"| {r.system} | {r.tokenizer} | {r.seconds:.1f} | {r.mb_per_s:.1f} | {cpu} | {per_core} | "
            f"{r.records_per_s:,.0f} | "
            f"{r.peak_memory_mib:.0f} | {ratio} | {latency} | {check} | {r.note} |"
        )
    return "\n".join(lines)


def chart(runs: list[tuple[str, list[Result]]], path: Path) -> None:
    """Bars of MB/s and of peak memory, one per run that finished, side by side for each corpus."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heights = [0.45 * max(1, sum(r.mb_per_s > 0 for r in results)) + 1.2 for _, results in runs]
    fig, axes = plt.subplots(
        len(runs), 2, figsize=(12, sum(heights)), squeeze=False, gridspec_kw={"height_ratios": heights}
    )
    for (title, results), (speed, memory) in zip(runs, axes):
        rows = [r for r in results if r.mb_per_s > 0]
        labels = [r.system + (" (UTF-8 copy)" if "cleaned" in r.note else "") for r in rows]
        colors = ["#4c72b0" if r.system.startswith("mrkafka") else "#999999" for r in rows]
        speed.barh(labels, [r.mb_per_s for r in rows], color=colors)
        speed.set_xlabel("MB/s (higher is better)")
        speed.set_title(title, loc="left", fontsize=10)
        memory.barh(labels, [r.peak_memory_mib for r in rows], color=colors)
        memory.set_xlabel("peak memory, MiB (lower is better)")
        memory.set_yticks([])
        speed.invert_yaxis()
        memory.invert_yaxis()
    fig.suptitle(f"Word count, {os.cpu_count()} CPUs")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _title(corpus_bytes: int, stream_bytes: int, corpus: str) -> str:
    size, stream = corpus_bytes / 2**20, stream_bytes / 2**20
    name = Path(corpus).name
    kind = {"docs-": "package documentation", "corpus-": "synthetic, Zipf words"}.get(name[: name.find("-") + 1], name)
    return f"{kind}, {size:.0f} MiB" + (f" ({stream:.0f} MiB for the Kafka rows)" if stream != size else "")


def chart_results(paths: list[Path], out: Path) -> None:
    """One chart of the results of several runs of the suite (one per corpus), from their JSON."""
    runs = []
    for path in paths:
        data = json.loads(path.read_text())
        title = _title(data["corpus_bytes"], data["stream_corpus_bytes"], data["corpus"])
        runs.append((title, [Result(**r) for r in data["results"]]))
    chart(runs, out)


def _corpus(kind: str, size_text: str, seed: int) -> Path:
    """The corpus of ``kind`` (``synthetic``: Zipf words; ``docs``: this machine's package
    documentation, repeated), made once and kept under ``benchmarks/data``."""
    corpus = DATA / (f"corpus-{size_text}-seed{seed}.txt" if kind == "synthetic" else f"docs-{size_text}.txt")
    if not corpus.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        print(f"generating {corpus} ...", file=sys.stderr)
        partial = corpus.with_suffix(".partial")
        if kind == "synthetic":
            generate_corpus(partial, parse_size(size_text), seed)
        else:
            generate_docs_corpus(partial, parse_size(size_text))
        partial.rename(corpus)
    return corpus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpus",
        choices=("synthetic", "docs"),
        default="synthetic",
        help="the generated corpus: Zipf words (synthetic, the default) or real text, this machine's "
        "package documentation (/usr/share/doc) repeated to the size (docs)",
    )
    parser.add_argument("--size", default="1GiB", help="size of the generated corpus (default 1GiB)")
    parser.add_argument("--input", help="a corpus file to use instead of the generated one")
    parser.add_argument("--stream-size", help="a smaller generated corpus for the Kafka rows")
    parser.add_argument(
        "--only",
        help=f"comma-separated systems (of {', '.join(SYSTEMS)}), in that order, a system "
        "named twice running twice; python always runs",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--results", default=str(RESULTS), help="where the JSON, markdown and PNG go")
    parser.add_argument(
        "--chart",
        nargs="+",
        metavar="JSON",
        help="run nothing: chart the results of earlier runs (one per corpus) together, into the PNG given last",
    )
    args = parser.parse_args(argv)
    if args.chart:
        if len(args.chart) < 2 or not args.chart[-1].endswith(".png"):
            parser.error("--chart takes results JSON files, then the PNG to write")
        chart_results([Path(p) for p in args.chart[:-1]], Path(args.chart[-1]))
        return 0

    corpus = Path(args.input) if args.input else _corpus(args.corpus, args.size, args.seed)
    stream_corpus = _corpus(args.corpus, args.stream_size, args.seed) if args.stream_size else corpus
    wanted = ["python"] + [s for s in (args.only.split(",") if args.only else SYSTEMS) if s != "python"]
    unknown = set(wanted) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems: {', '.join(sorted(unknown))} (known: {', '.join(SYSTEMS)})")

    workdir = Path(tempfile.mkdtemp(prefix="mrkafka-bench-"))
    bench = Bench(corpus, stream_corpus, workdir)
    runs = {
        "python": bench.python,
        "pyarrow": bench.pyarrow,
        "c": bench.c,
        "dask": bench.dask,
        "ray-data": bench.ray_data,
        "pyspark": bench.pyspark,
        "hadoop": bench.hadoop,
        "mrkafka-local": lambda: bench.mrkafka("local"),
        "mrkafka-ray": lambda: bench.mrkafka("ray"),
        "mrkafka-inline": lambda: bench.mrkafka("inline"),
        "mrkafka-stream": lambda: bench.mrkafka_stream(False),
        "mrkafka-stream-at-least-once": lambda: bench.mrkafka_stream(False, "at-least-once"),
        "mrkafka-stream-demo": lambda: bench.mrkafka_stream(True),
        "kafka-streams-demo": bench.kafka_streams_demo,
        "kafka-streams-demo-tuned": lambda: bench.kafka_streams_demo(tuned=True),
    }
    try:
        for system in wanted:
            print(f"running {system} ...", file=sys.stderr)
            runs[system]()
    finally:
        bench.close()
        shutil.rmtree(workdir, ignore_errors=True)

    info = machine()
    text = table(bench, info)
    print(text)
    results_dir = Path(args.results)
    results_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{datetime.date.today().isoformat()}-{platform.node() or 'machine'}"
    if not args.input:
        stem += f"-{args.corpus}"
    (results_dir / f"{stem}.json").write_text(
        json.dumps(
            {
                "machine": info,
                "corpus_bytes": corpus.stat().st_size,
                "corpus": str(corpus),
                "stream_corpus_bytes": stream_corpus.stat().st_size,
                "results": [asdict(r) for r in bench.results],
            },
            indent=2,
        )
        + "\n"
    )
    (results_dir / f"{stem}.md").write_text(text + "\n")
    title = _title(corpus.stat().st_size, stream_corpus.stat().st_size, str(corpus))
    chart([(title, bench.results)], results_dir / f"{stem}.png")
    failed = [r for r in bench.results if r.correct is False and not r.note.startswith("failed")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
