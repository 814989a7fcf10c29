"""The benchmark suite runs end to end on a small corpus and writes its table and JSON."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.corpus import generate_corpus
from benchmarks.oracles import derive, java_split_empty_words
from tests.helpers import ROOT, oracle_wordcount

pytestmark = pytest.mark.integration


def test_corpus_is_deterministic_and_holds_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    a = generate_corpus(tmp_path / "a.txt", 200_000, seed=1).read_bytes()
    b = generate_corpus(tmp_path / "b.txt", 200_000, seed=1).read_bytes()
    assert a == b and len(a) >= 200_000 and a.endswith(b"\n")
    assert generate_corpus(tmp_path / "c.txt", 200_000, seed=2).read_bytes() != a
    counts = oracle_wordcount(a)
    assert len(counts) > 5_000
    assert any(b"\xe9" in word for word in counts)


def test_suite_smoke(tmp_path: Path) -> None:
    corpus = generate_corpus(tmp_path / "corpus.txt", 2_000_000, seed=3)
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "benchmarks", "--input", str(corpus), "--only", "pyarrow,mrkafka-inline",
           "--results", str(results)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (report,) = results.glob("*.json")
    rows = {r["system"]: r for r in json.loads(report.read_text())["results"]}
    assert rows.keys() == {"python", "pyarrow", "mrkafka-inline"}
    assert all(rows[s]["correct"] is True and rows[s]["mb_per_s"] > 0 for s in ("pyarrow", "mrkafka-inline"))
    assert "| mrkafka-inline |" in report.with_suffix(".md").read_text()
    assert report.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_java_split_oracle(tmp_path: Path) -> None:
    """The demo's oracle against a direct emulation of Java's String.split("\\W+") per line."""

    def java_split(line: bytes) -> list[bytes]:
        parts = re.split(rb"[^A-Za-z0-9_]+", line.lower())
        if len(parts) == 1:  # no match: the input itself, even when empty
            return parts
        while parts and parts[-1] == b"":  # trailing empty strings are dropped
            parts.pop()
        return parts

    text = b"Hello, World\n  leading spaces\n\n\xe9t\xe9 x\n...\nA_b c-d\n"
    expected: dict[bytes, int] = {}
    baseline: dict[bytes, int] = {}
    for line in text.split(b"\n")[:-1]:
        for word in java_split(line):
            expected[word] = expected.get(word, 0) + 1
        for word in line.split():
            baseline[word] = baseline.get(word, 0) + 1
    derived = derive(baseline, "lower, \\W+")
    (tmp_path / "in.txt").write_bytes(text)
    empty = java_split_empty_words(tmp_path / "in.txt")
    assert {**derived, **({b"": empty} if empty else {})} == expected
