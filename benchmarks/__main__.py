"""``python -m benchmarks``: batch word count, mrkafka against the plain Python baseline.

Each system runs as its own command on the same corpus; the wall time of the whole command,
MB/s and the peak memory of all its processes (Ray's workers included, as proportional set
size so that shared object-store pages count once) are reported, with the ratio to the
baseline. Every system's output is checked against the baseline's counts.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from benchmarks.corpus import generate_corpus
from mrkafka.splits import parse_size

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT / "benchmarks" / "data"
MRKAFKA = [sys.executable, "-m", "mrkafka.cli"]


@dataclass
class Result:
    system: str
    seconds: float
    mb_per_s: float
    peak_memory_mib: float
    vs_baseline: float | None
    correct: bool
    note: str = ""


def _commands(corpus: Path, out: Path) -> dict[str, list[str]]:
    job = str(ROOT / "jobs" / "wordcount.py")
    run = [*MRKAFKA, "run", job, "--input", str(corpus)]
    return {
        "python": [sys.executable, "-m", "benchmarks.baseline", str(corpus), str(out / "python")],
        "mrkafka-ray": [*run, "--output", str(out / "mrkafka-ray"), "--runner", "ray"],
        "mrkafka-inline": [*run, "--output", str(out / "mrkafka-inline"), "--runner", "inline"],
    }


def _tree_pss(process: psutil.Process) -> int:
    total = 0
    for p in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += p.memory_full_info().pss
    return total


def measure(cmd: list[str]) -> tuple[float, int, subprocess.CompletedProcess]:
    """Wall seconds and peak memory (bytes, summed over the process tree) of one command."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        handle = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                peak = max(peak, _tree_pss(handle))
            except psutil.NoSuchProcess:
                return
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


def machine() -> dict[str, object]:
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "system": platform.platform(),
    }


def table(results: list[Result], corpus_bytes: int, info: dict) -> str:
    lines = [
        f"Word count over {corpus_bytes / 2**20:.0f} MiB on {info['cpus']} CPUs, {info['memory_gib']} GiB "
        f"({info['processor']}, Python {info['python']})",
        "",
        "| system | wall s | MB/s | peak memory MiB | x baseline | output |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in results:
        ratio = f"{r.vs_baseline:.2f}" if r.vs_baseline else "-"
        check = "matches baseline" if r.correct else f"WRONG {r.note}"
        lines.append(
            f"| {r.system} | {r.seconds:.1f} | {r.mb_per_s:.1f} | {r.peak_memory_mib:.0f} | {ratio} | {check} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1GiB", help="size of the generated corpus (default 1GiB)")
    parser.add_argument("--input", help="a corpus file to use instead of the generated one")
    parser.add_argument("--only", help="comma-separated systems to run (python is always run first)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--results", default=str(RESULTS), help="where the JSON and markdown go")
    args = parser.parse_args(argv)

    if args.input:
        corpus = Path(args.input)
    else:
        size = parse_size(args.size)
        corpus = DATA / f"corpus-{args.size}-seed{args.seed}.txt"
        if not corpus.exists():
            DATA.mkdir(parents=True, exist_ok=True)
            print(f"generating {corpus} ...", file=sys.stderr)
            generate_corpus(corpus, size, args.seed)
    corpus_bytes = corpus.stat().st_size
    out = Path(tempfile.mkdtemp(prefix="mrkafka-bench-"))
    commands = _commands(corpus, out)
    wanted = ["python"] + [s for s in (args.only.split(",") if args.only else commands) if s != "python"]
    unknown = set(wanted) - set(commands)
    if unknown:
        parser.error(f"unknown systems: {', '.join(sorted(unknown))} (known: {', '.join(commands)})")

    results: list[Result] = []
    reference: dict[bytes, bytes] = {}
    try:
        for system in wanted:
            print(f"running {system} ...", file=sys.stderr)
            seconds, peak, proc = measure(commands[system])
            if proc.returncode != 0:
                results.append(Result(system, seconds, 0, peak / 2**20, None, False, proc.stderr.decode()[-300:]))
                continue
            counts = _read_counts(out / system)
            if system == "python":
                reference = counts
            baseline = results[0].seconds if results else seconds
            results.append(
                Result(system, seconds, corpus_bytes / 1e6 / seconds, peak / 2**20, baseline / seconds,
                       counts == reference)
            )  # fmt: skip
    finally:
        shutil.rmtree(out, ignore_errors=True)

    info = machine()
    text = table(results, corpus_bytes, info)
    print(text)
    results_dir = Path(args.results)
    results_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{datetime.date.today().isoformat()}-{platform.node() or 'machine'}"
    (results_dir / f"{stem}.json").write_text(
        json.dumps({"machine": info, "corpus_bytes": corpus_bytes, "corpus": str(corpus),
                    "results": [asdict(r) for r in results]}, indent=2) + "\n"
    )  # fmt: skip
    (results_dir / f"{stem}.md").write_text(text + "\n")
    return 0 if all(r.correct for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
