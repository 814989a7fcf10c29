"""``python -m benchmarks.lookup``: the prefix index's build and look-up speed on real text.

Builds (or reuses) the docs corpus (this machine's package documentation, repeated to the
size asked), runs word count and ``jobs/prefix_index.py`` over it with the same runner,
then times look-ups on the index: exact prefixes, and ``--fuzzy 1`` and ``--fuzzy 2`` on
words with typos injected, all drawn at random from the corpus. A look-up is timed as
``mrkafka.io.lookup.lookup`` in one process (opening the index files included), and once as a
whole ``mrkafka lookup`` command (Python's start included). ``--fuzzy 2`` is timed returning
every key within two edits (a two-letter typo matches most keys of up to four letters), and
returning the best 10, as a suggester does.

    python -m benchmarks.lookup --size 256MiB --queries 1000
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.corpus import generate_docs_corpus
from mrkafka.io.lookup import lookup
from mrkafka.io.splits import parse_size

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data"
RESULTS = ROOT / "benchmarks" / "results"


def _run(job: str, corpus: Path, output: Path, runner: str) -> float:
    started = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "mrkafka.cli",
            "run",
            str(ROOT / "jobs" / job),
            "--input",
            str(corpus),
            "--output",
            str(output),
            "--overwrite",
            "--runner",
            runner,
        ],
        check=True,
    )
    return time.monotonic() - started


def _typo(word: str, rng: random.Random) -> str:
    """One or two random edits (substitution, insertion, deletion or transposition)."""
    chars = list(word)
    for _ in range(rng.randint(1, 2)):
        at = rng.randrange(len(chars))
        edit = rng.choice("sidt")
        if edit == "s":
            chars[at] = rng.choice("abcdefghijklmnopqrstuvwxyz")
        elif edit == "i":
            chars.insert(at, rng.choice("abcdefghijklmnopqrstuvwxyz"))
        elif edit == "d" and len(chars) > 2:
            del chars[at]
        elif at + 1 < len(chars):
            chars[at], chars[at + 1] = chars[at + 1], chars[at]
    return "".join(chars)


def _queries(corpus: Path, count: int, seed: int) -> list[str]:
    """Words drawn from the corpus (read at random offsets), as a user would type them."""
    rng = random.Random(seed)
    size = corpus.stat().st_size
    words: list[str] = []
    with open(corpus, "rb") as f:
        while len(words) < count:
            f.seek(rng.randrange(size))
            line = f.readline() and f.readline()
            found = [w.decode("utf-8", "surrogateescape") for w in line.split() if 3 <= len(w) <= 20]
            if found:
                words.append(rng.choice(found))
    return words


def _latencies(output: Path, queries: list[str], edits: int, limit: int | None = None) -> dict[str, float]:
    seconds = []
    hits = 0
    for query in queries:
        started = time.perf_counter()
        hits += bool(lookup(output, query, edits, limit))
        seconds.append(time.perf_counter() - started)
    ms = np.array(seconds) * 1000
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "queries_per_s": len(queries) / float(np.sum(seconds)),
        "found": hits / len(queries),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lookup", description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1GiB", help="size of the docs corpus (default 1GiB)")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--runner", default="ray", choices=["ray", "inline"])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--results", default=str(RESULTS), help="where the JSON and markdown go")
    args = parser.parse_args(argv)

    corpus = DATA / f"docs-{args.size}.txt"
    if not corpus.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        print(f"generating {corpus} ...", file=sys.stderr)
        generate_docs_corpus(corpus, parse_size(args.size))
    work = DATA / f"lookup-{args.size}"
    wordcount_s = _run("wordcount.py", corpus, work / "wordcount", args.runner)
    prefix_s = _run("prefix_index.py", corpus, work / "prefix_index", args.runner)
    index = work / "prefix_index"
    rng = random.Random(args.seed)
    words = _queries(corpus, args.queries, args.seed)
    prefixes = [w[: rng.randint(2, len(w))] for w in words]
    typos = [_typo(w, rng) for w in words]
    rows = {
        "exact prefix": _latencies(index, prefixes, 0),
        "--fuzzy 1": _latencies(index, typos, 1),
        "--fuzzy 2": _latencies(index, typos, 2),
        "--fuzzy 2 --limit 10": _latencies(index, typos, 2, 10),
    }
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "mrkafka.cli", "lookup", str(index), typos[0], "--fuzzy", "2"],
        check=False,
        capture_output=True,
    )
    command_s = time.monotonic() - started

    mb = corpus.stat().st_size / 1e6
    index_mb = sum(p.stat().st_size for p in index.rglob("*") if p.is_file()) / 1e6
    lines = [
        f"corpus: {mb:,.0f} MB of package documentation; runner {args.runner}",
        "",
        "| job | wall | MB/s |",
        "|---|---:|---:|",
        f"| wordcount | {wordcount_s:.1f} s | {mb / wordcount_s:.1f} |",
        f"| prefix_index | {prefix_s:.1f} s | {mb / prefix_s:.1f} |",
        "",
        f"prefix_index / wordcount speed: {wordcount_s / prefix_s:.2f}; output and index: {index_mb:,.0f} MB",
        "",
        f"| look-up ({args.queries} queries) | p50 | p99 | queries/s | found |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {name} | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {r['queries_per_s']:,.0f} | {r['found']:.0%} |"
            for name, r in rows.items()
        ),
        "",
        f"one `mrkafka lookup OUT WORD --fuzzy 2` command, Python's start included: {command_s:.2f} s",
    ]
    text = "\n".join(lines)
    print(text)
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    stem = f"lookup-{args.size}"
    (results / f"{stem}.md").write_text(text + "\n")
    (results / f"{stem}.json").write_text(
        json.dumps(
            {
                "corpus_mb": mb,
                "runner": args.runner,
                "wordcount_s": wordcount_s,
                "prefix_index_s": prefix_s,
                "index_mb": index_mb,
                "lookups": rows,
                "command_s": command_s,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
