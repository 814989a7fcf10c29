from __future__ import annotations

import collections
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mrkafka.batch import run_batch
from mrkafka.io.index import INDEX_DIR, levenshtein
from mrkafka.io.lookup import _rows, lookup
from mrkafka.job import JobSpec, load_job
from mrkafka.settings import BatchSettings
from tests.helpers import ROOT, edit_distance, messy_corpus, oracle_wordcount, real_text


@pytest.mark.parametrize(
    "a,b,d",
    [
        ("kitten", "sitting", 3),
        ("", "abc", 3),
        ("abc", "abc", 0),
        ("Mukesh", "Mukseh", 2),
        ("ab", "ba", 2),
        ("flaw", "lawn", 2),
        ("Mu", "Mukesh", 4),
    ],
)
def test_levenshtein(a: str, b: str, d: int) -> None:
    assert levenshtein(a, b, 10) == d == levenshtein(b, a, 10)
    assert levenshtein(a, b, d - 1) == d if d else True  # a distance over the limit is limit + 1


# -- the lookup index against a brute-force oracle ---------------------------------------------


def _distances(candidates: np.ndarray, query: str) -> np.ndarray:
    """The Levenshtein distance from ``query`` to each row of ``candidates`` (code points, one
    key per row, all of one length): the whole table, for every key at once, no cut-offs."""
    q = [ord(c) for c in query]
    previous = np.tile(np.arange(len(q) + 1), (len(candidates), 1))
    for i in range(candidates.shape[1]):
        current = np.empty_like(previous)
        current[:, 0] = i + 1
        for j in range(1, len(q) + 1):
            substitute = previous[:, j - 1] + (candidates[:, i] != q[j - 1])
            current[:, j] = np.minimum(np.minimum(previous[:, j], current[:, j - 1]) + 1, substitute)
        previous = current
    return previous[:, len(q)]


def _distance(a: str, b: str, edits: int) -> int:
    """For long keys: the whole table (``edit_distance``), once two lower bounds (the lengths' difference and
    the characters' multisets) leave it possible, after dropping a common prefix and suffix."""
    surplus = collections.Counter(a)
    surplus.subtract(b)
    if max(sum(n for n in surplus.values() if n > 0), -sum(n for n in surplus.values() if n < 0)) > edits:
        return edits + 1
    start = len(os.path.commonprefix([a, b]))
    a, b = a[start:], b[start:]
    end = len(os.path.commonprefix([a[::-1], b[::-1]]))
    a, b = a[: len(a) - end], b[: len(b) - end]
    return edit_distance(a, b)


def _typo(word: str, rng: random.Random, alphabet: str) -> str:
    """``word`` with 0 to 3 random edits: substitutions, insertions, deletions, transpositions."""
    chars = list(word)
    for _ in range(rng.randint(0, 3)):
        at = rng.randint(0, len(chars))
        edit = rng.choice("sidt")
        if edit == "i" or not chars:
            chars.insert(at, rng.choice(alphabet))
        elif edit == "d":
            del chars[min(at, len(chars) - 1)]
        elif edit == "s":
            chars[min(at, len(chars) - 1)] = rng.choice(alphabet)
        elif len(chars) > 1:
            at = min(at, len(chars) - 2)
            chars[at], chars[at + 1] = chars[at + 1], chars[at]
    return "".join(chars)


@pytest.fixture(scope="module")
def prefix_output(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[str, Any]]]:
    """prefix_index over real text and messy lines (non-UTF-8 bytes, long words), and its rows."""
    workdir = tmp_path_factory.mktemp("lookup")
    source = workdir / "input.txt"
    source.write_bytes(real_text(30_000) + messy_corpus(lines=60))
    spec = JobSpec(load_job(ROOT / "jobs" / "prefix_index.py"))
    output = workdir / "out"
    run_batch(spec, BatchSettings(inputs=[str(source)], output=output, reducers=3, runner="inline"), progress=False)
    rows = [row for part in sorted(output.glob("part-r-*")) for row in _rows(part)]
    return output, rows


def test_the_index_finds_what_a_brute_force_search_finds(prefix_output: tuple[Path, list[tuple[str, Any]]]) -> None:
    output, rows = prefix_output
    assert sorted(p.name for p in (output / INDEX_DIR).iterdir()) == [
        f"part-r-0000{k}{suffix}" for k in range(3) for suffix in (".keys.arrow", ".trie.arrow")
    ]
    rng = random.Random(11)
    keys = [key for key, _ in rows]
    alphabet = "".join(sorted(set("".join(rng.sample(keys, 200))))) + "é\udcff"
    by_length: dict[int, list[tuple[str, Any]]] = collections.defaultdict(list)
    for key, value in rows:
        by_length[len(key)].append((key, value))
    matrices = {n: np.array([[ord(c) for c in k] for k, _ in kv]).reshape(len(kv), n) for n, kv in by_length.items()}
    short = [key for key in keys if len(key) <= 40]  # what people type; a few long keys too
    for i in range(2000):
        source = rng.choice(keys if i % 100 == 0 else short) if rng.random() < 0.9 else ""
        query = _typo(source, rng, alphabet)
        edits = rng.choice([0, 1, 2])
        expected = []
        for n in range(max(0, len(query) - edits), len(query) + edits + 1):
            if len(query) <= 40:
                distances = _distances(matrices[n], query) if n in by_length else []
            else:
                distances = [_distance(query, k, edits) for k, _ in by_length.get(n, [])]
            expected += [(k, int(d), v) for (k, v), d in zip(by_length.get(n, []), distances) if d <= edits]
        expected.sort(key=lambda row: (row[1], -row[2][0][1], row[0]))  # nearest, most frequent, key
        assert lookup(output, query, edits) == expected, (query, edits)


def test_an_output_without_its_index_gives_the_same_answers(
    prefix_output: tuple[Path, list[tuple[str, Any]]], tmp_path: Path
) -> None:
    output, rows = prefix_output
    bare = tmp_path / "bare"
    shutil.copytree(output, bare, ignore=shutil.ignore_patterns(INDEX_DIR))
    rng = random.Random(5)
    for key in rng.sample([key for key, _ in rows if len(key) <= 40], 8):
        for edits in (0, 1, 2):
            assert lookup(bare, key, edits) == lookup(output, key, edits)


def test_word_counts_are_looked_up_and_limited_to_the_best(tmp_path: Path) -> None:
    """An output of Arrow integer values (word count's) gets an index too, when asked for;
    ``limit`` keeps the first keys of the full ranking."""
    data = messy_corpus(lines=200) + real_text(20_000)
    source = tmp_path / "input.txt"
    source.write_bytes(data)
    output = tmp_path / "out"
    run_batch(
        JobSpec(load_job(ROOT / "jobs" / "wordcount.py"), index=True),
        BatchSettings(inputs=[str(source)], output=output, reducers=2, runner="inline"),
    )
    counts = {w.decode("utf-8", "surrogateescape"): n for w, n in oracle_wordcount(data).items()}
    for word in random.Random(2).sample(sorted(counts), 50):
        assert lookup(output, word) == [(word, 0, counts[word])]
        everything = lookup(output, word, 2)
        assert lookup(output, word, 2, limit=3) == everything[:3]
        assert everything == sorted(everything, key=lambda row: (row[1], -row[2], row[0]))
