"""The benchmark suite runs end to end on a small corpus and writes its table and JSON."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.__main__ import read_counts
from benchmarks.corpus import generate_corpus
from benchmarks.oracles import derive, hadoop_counts, java_split_empty_words
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
    cmd = [
        sys.executable,
        "-m",
        "benchmarks",
        "--input",
        str(corpus),
        "--only",
        "pyarrow,c,mrkafka-inline",
        "--results",
        str(results),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (report,) = results.glob("*.json")
    rows = {r["system"]: r for r in json.loads(report.read_text())["results"]}
    systems = ["pyarrow", "mrkafka-inline"] + (["c"] if shutil.which("cc") else [])
    assert rows.keys() == {"python", *systems}
    assert all(rows[s]["correct"] is True and rows[s]["mb_per_s"] > 0 for s in systems)
    # CPU time: the inline runner keeps one core busy for most of its run, and never two.
    inline = rows["mrkafka-inline"]
    assert 0.3 * inline["seconds"] < inline["cpu_seconds"] < 1.5 * inline["seconds"]
    table = report.with_suffix(".md").read_text()
    assert "| mrkafka-inline |" in table and "MB/s per core" in table
    assert report.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(shutil.which("cc") is None, reason="the C anchor needs a C compiler (cc)")
def test_c_anchor_counts_as_bytes_split(tmp_path: Path) -> None:
    """The plain C word count against a Counter, on real text, bytes that are not UTF-8 and a
    word of 900,000 bytes, built with 4 KiB chunks so that words are cut at chunks' ends and
    one outgrows a chunk; a last line without its newline; an empty file."""
    binary = tmp_path / "wc"
    source = ROOT / "benchmarks" / "peers" / "wc.c"
    subprocess.run(["cc", "-O2", "-DCHUNK=4096", "-o", str(binary), str(source)], check=True)
    data = real_text(1 << 20) + b"w" * 900_000 + b" \x00\xff\tend\x0b\x0c\rlast"
    for name, content in (("text", data), ("empty", b"")):
        corpus, out = tmp_path / name, tmp_path / f"{name}.out"
        corpus.write_bytes(content)
        subprocess.run([str(binary), str(corpus), str(out)], check=True)
        assert read_counts(out) == oracle_wordcount(content)


def test_java_tokenizer_oracle_is_java(tmp_path: Path) -> None:
    """WordCountDemo's oracle (derived from the baseline's words, plus its empty words)
    against Java itself: String.toLowerCase and split("\\W+") over UTF-8-decoded lines of real
    text, and of lines whose Unicode lowercasing makes ASCII letters (the dotted capital I,
    the Kelvin sign) or that are not UTF-8."""
    from mrkafka.devtools.jars import java_command

    tricky = "İstanbul \u212aelvin ÉTÉ Straße ΣΑΣ\n  leading spaces\n\n...\nA_b c-d\r\n\r\n \r\n\x0c\n".encode()
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


def test_hadoop_wordcount_equals_mrkafka_byte_for_byte(tmp_path: Path) -> None:
    """Apache Hadoop's own WordCount (local mode, the benchmark's row) and mrkafka with one
    reducer write the same part file, on real text that is UTF-8 and holds no vertical tab
    (Hadoop decodes lines as UTF-8, and its StringTokenizer does not split on \\v). On the
    rest, Hadoop's counts are what the benchmark's oracle for it derives."""
    from benchmarks.peers import hadoop_wc

    text = real_text(300_000) + b"a\x0bb c\r\n\xe9t\xe9 \xffx\rlone carriage\x0cfeed\n"
    lines = text.split(b"\n")
    clean = [line for line in lines if b"\x0b" not in line and b"\r" not in line and _is_utf8(line)]
    assert len(clean) < len(lines)
    for name, data in (("clean", b"\n".join(clean) + b"\n"), ("all", text)):
        (tmp_path / f"{name}.txt").write_bytes(data)
        subprocess.run(
            hadoop_wc.command(str(tmp_path / f"{name}.txt"), str(tmp_path / f"hadoop-{name}"), reducers=1),
            cwd=tmp_path,
            capture_output=True,
            timeout=300,
            check=True,
        )
    mrkafka = [
        sys.executable,
        "-m",
        "mrkafka.cli",
        "run",
        str(ROOT / "jobs" / "wordcount.py"),
        "--input",
        str(tmp_path / "clean.txt"),
        "--output",
        str(tmp_path / "mrkafka"),
        "--reducers",
        "1",
        "--runner",
        "inline",
    ]
    subprocess.run(mrkafka, capture_output=True, timeout=300, check=True)
    ours = (tmp_path / "mrkafka" / "part-r-00000").read_bytes()
    assert ours == (tmp_path / "hadoop-clean" / "part-r-00000").read_bytes()
    assert len(ours.splitlines()) > 5_000
    expected = hadoop_counts(oracle_wordcount(text), tmp_path / "all.txt")
    assert read_counts(tmp_path / "hadoop-all") == expected
    assert expected[b"a\x0bb"] == 1 and expected["\ufffdx".encode()] == 1


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_object_storage_benchmark_smoke(tmp_path: Path) -> None:
    corpus = tmp_path / "docs.txt"
    corpus.write_bytes(real_text(1 << 20))
    cmd = [sys.executable, "-m", "benchmarks.object_storage", "--input", str(corpus), "--repeat", "1"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "| s3 (moto) |" in proc.stdout and "s3 / local:" in proc.stdout, proc.stdout
