"""The benchmark suite runs end to end on a small corpus and writes its table and JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.corpus import generate_corpus
from benchmarks.oracles import derive, java_split_empty_words
from tests.helpers import ROOT, oracle_wordcount, real_text

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


def test_java_tokenizer_oracle_is_java(tmp_path: Path) -> None:
    """WordCountDemo's oracle (derived from the baseline's words, plus its empty words)
    against Java itself: String.toLowerCase and split("\\W+") over UTF-8-decoded lines of real
    text, and of lines whose Unicode lowercasing makes ASCII letters (the dotted capital I,
    the Kelvin sign) or that are not UTF-8."""
    from mrkafka.kafka.launcher import java_command

    tricky = "İstanbul \u212aelvin ÉTÉ Straße ΣΑΣ\n  leading spaces\n\n...\nA_b c-d\n".encode()
    text = tricky + b"\xe9t\xe9 x\xffy \xe2\x82z\n" + real_text(200_000)
    (tmp_path / "in.txt").write_bytes(text)
    java = ROOT / "tests" / "integration" / "java" / "DemoTokenizer.java"
    proc = subprocess.run([java_command(), str(java)], input=text, capture_output=True, timeout=120, check=True)
    expected = {}
    for line in proc.stdout.splitlines():
        word, _, count = line.rpartition(b"\t")
        expected[word] = int(count)
    derived = derive(oracle_wordcount(text), "Java lower, \\W+")
    empty = java_split_empty_words(tmp_path / "in.txt")
    assert {**derived, **({b"": empty} if empty else {})} == expected
    assert expected[b"i"] >= 1 and expected[b"kelvin"] >= 1  # what a bytes-only oracle would miss
