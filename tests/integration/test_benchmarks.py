"""The benchmark suite runs end to end on a small corpus and writes its table and JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.corpus import generate_corpus
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
    cmd = [sys.executable, "-m", "benchmarks", "--input", str(corpus), "--only", "mrkafka-inline",
           "--results", str(results)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (report,) = results.glob("*.json")
    rows = {r["system"]: r for r in json.loads(report.read_text())["results"]}
    assert rows.keys() == {"python", "mrkafka-inline"}
    assert rows["mrkafka-inline"]["correct"] is True and rows["mrkafka-inline"]["mb_per_s"] > 0
    assert "| mrkafka-inline |" in (results / report.name.replace(".json", ".md")).read_text()
