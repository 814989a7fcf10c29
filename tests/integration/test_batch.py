"""The batch engine end to end, on both runners, against the ``Counter`` oracle."""

from __future__ import annotations

import collections
import json
import re
from pathlib import Path

import pytest

from mrkafka.batch import run_batch
from mrkafka.errors import BadInputError, JobFailedError
from mrkafka.job import JobSpec, load_job
from mrkafka.settings import BatchSettings
from tests.helpers import (
    PICKY_JOB,
    WORDCOUNT,
    messy_corpus,
    murmur2,
    oracle_wordcount,
    read_parts,
    real_text,
    to_positive,
    write_job,
)

pytestmark = pytest.mark.integration


def wordcount(runner: str, inputs, out: Path, vectorize: bool = True, index: bool = False, **kw):
    spec = JobSpec(load_job(WORDCOUNT), vectorize=vectorize, index=index)
    kw.setdefault("block_size", 4096)
    return run_batch(
        spec, BatchSettings(inputs=[str(p) for p in inputs], output=out, runner=runner, **kw), progress=False
    )


@pytest.mark.parametrize("vectorize", [True, False])
def test_wordcount_equals_the_oracle(runner: str, messy_file: Path, tmp_path: Path, vectorize: bool) -> None:
    out = tmp_path / "out"
    report = wordcount(runner, [messy_file], out, vectorize=vectorize, index=vectorize, reducers=3)
    expected = oracle_wordcount(messy_file.read_bytes())
    assert {k: int(v) for k, v in read_parts(out).items()} == dict(expected)
    parts = ["part-r-00000", "part-r-00001", "part-r-00002"]
    # The lookup index only when asked for (here: with the vectorized form).
    assert sorted(p.name for p in out.iterdir()) == [
        "_COUNTERS.json",
        "_SUCCESS",
        *(["_index"] if vectorize else []),
        *parts,
    ]
    if vectorize:
        assert sorted(p.name for p in (out / "_index").iterdir()) == [
            f"{part}.{what}.arrow" for part in parts for what in ("keys", "trie")
        ]
    counters = json.loads((out / "_COUNTERS.json").read_text())
    framework = counters["Map-Reduce Framework"]
    assert counters["wordcount"]["words"] == sum(expected.values())
    # The vectorized map counts each batch's words itself (in-mapper combining).
    emitted = framework["Map output records"]
    assert emitted == sum(expected.values()) if not vectorize else len(expected) <= emitted < sum(expected.values())
    assert framework["Combine input records"] == emitted
    assert framework["Reduce output records"] == len(expected)
    assert framework["Map input records"] == messy_file.read_bytes().count(b"\n") + 1
    assert report.counters.get(("Job Counters", "Launched map tasks")) > 10


def test_vectorized_and_per_record_forms_are_byte_identical(runner: str, messy_file: Path, tmp_path: Path) -> None:
    wordcount(runner, [messy_file], tmp_path / "v", vectorize=True)
    wordcount(runner, [messy_file], tmp_path / "r", vectorize=False)
    for name in ("part-r-00000", "part-r-00001"):
        assert (tmp_path / "v" / name).read_bytes() == (tmp_path / "r" / name).read_bytes()


def test_each_part_holds_the_keys_kafka_would_put_in_that_partition(
    runner: str, messy_file: Path, tmp_path: Path
) -> None:
    wordcount(runner, [messy_file], tmp_path / "out", reducers=5)
    for k in range(5):
        lines = (tmp_path / "out" / f"part-r-{k:05d}").read_bytes().splitlines()
        keys = [line.rpartition(b"\t")[0] for line in lines]
        assert keys == sorted(keys)
        assert all(to_positive(murmur2(key)) % 5 == k for key in keys)


def test_runners_agree_on_several_inputs(runner: str, tmp_path: Path, messy_file: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "one.txt").write_bytes(b"a b c\nb c\n")
    (tmp_path / "dir" / "empty.txt").write_bytes(b"")
    (tmp_path / "dir" / "_ignored").write_bytes(b"zzz\n")
    wordcount(runner, [tmp_path / "dir", messy_file], tmp_path / "out")
    expected = oracle_wordcount(b"a b c\nb c\n" + b"\n" + messy_file.read_bytes())
    assert {k: int(v) for k, v in read_parts(tmp_path / "out").items()} == dict(expected)


def test_map_only_writes_one_part_per_split_in_input_order(runner: str, tmp_path: Path) -> None:
    job = write_job(
        tmp_path,
        """
        from mrkafka import Job
        class Upper(Job):
            def map(self, offset, line):
                yield line.upper(), offset
        """,
        "upper.py",
    )
    data = b"b x\na y\nc z\n"
    (tmp_path / "in.txt").write_bytes(data)
    spec = JobSpec(load_job(job))
    run_batch(
        spec,
        BatchSettings(
            inputs=[str(tmp_path / "in.txt")], output=tmp_path / "out", reducers=0, block_size=4, runner=runner
        ),
    )
    parts = sorted((tmp_path / "out").glob("part-m-*"))
    assert [p.name for p in parts] == ["part-m-00000", "part-m-00001", "part-m-00002"]
    assert b"".join(p.read_bytes() for p in parts) == b"B X\t0\nA Y\t4\nC Z\t8\n"


def test_small_files_are_combined_each_with_its_own_lines(runner: str, tmp_path: Path) -> None:
    """A directory of small files (real text, messy lines, files without a final newline,
    gzip, empty ones, one big file among them): fewer map tasks than files, and the same
    counts as the oracle over each file alone; a map-only run keeps input order and each
    line's offset in its own file."""
    import gzip

    corpus = real_text(150_000) + messy_corpus(lines=400)
    files, at = [], 0
    for i, size in enumerate([3000, 0, 700, 15_000, 1, 2500, 900, 40] * 4):  # 15,000: a big file (block 4 KiB)
        data = corpus[at : at + size]
        at += size
        path = tmp_path / "in" / f"d{i % 3}" / (f"{i:02d}.gz" if i % 5 == 2 else f"{i:02d}.txt")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
        files.append((str(path), data))
    files.sort()  # the order the run reads them in
    expected = sum((oracle_wordcount(data) for _, data in files), collections.Counter())
    for vectorize in (True, False):
        out = tmp_path / f"out-{vectorize}"
        report = wordcount(runner, [tmp_path / "in"], out, vectorize=vectorize, block_size=4096)
        assert {k: int(v) for k, v in read_parts(out).items()} == dict(expected)
        tasks = report.counters.get(("Job Counters", "Launched map tasks"))
        # 4 splits for each big file; the 24 small ones (4 empty) in a split for each run of them
        # in the order they are read (7 runs: the big files stand between them) or a few more.
        assert 4 * 4 < tasks <= 4 * 4 + 10, tasks
    job = write_job(tmp_path, OFFSETS_JOB, "offsets.py")
    run_batch(
        JobSpec(load_job(job)),
        BatchSettings(inputs=[str(tmp_path / "in")], output=tmp_path / "m", reducers=0, block_size=4096, runner=runner),
    )
    lines = [(offset, line) for _, data in files for offset, line in _lines_with_offsets(data)]
    parts = sorted((tmp_path / "m").glob("part-m-*"))
    assert b"".join(p.read_bytes() for p in parts) == b"".join(
        b"%d\t%s\n" % (at, line.hex().encode()) for at, line in lines
    )


OFFSETS_JOB = """
from mrkafka import Job
class Offsets(Job):
    input_type = bytes
    def map(self, offset, line):
        yield offset, line.hex()
"""


def _lines_with_offsets(data: bytes) -> list[tuple[int, bytes]]:
    """Each line of a file and the offset it starts at: Hadoop's LineRecordReader, as an oracle."""
    found, at = [], 0
    for line in data.split(b"\n")[: -1 if data.endswith(b"\n") else None] if data else []:
        found.append((at, line[:-1] if line.endswith(b"\r") else line))
        at += len(line) + 1
    return found


MIXED_JOB = """
from mrkafka import Job
class Mixed(Job):
    input_type = bytes
    def map(self, offset, line):
        for word in line.split():
            yield word, 1 if len(word) % 2 else 0.5
    def reduce(self, a, b):
        return a + b
"""


def test_a_reducer_over_its_memory_spills_and_writes_the_same_bytes(
    runner: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a budget far below its state, a reduce task spills many runs (more than a merge
    takes at once) and still writes, in every format, the parts it writes in memory: word count
    (sums in Arrow) and a Python reduce whose values are ints for some keys and floats for
    others, with its lookup index. Counted as Hadoop's ``Spilled Records``; the runs are gone
    after the run."""
    import random

    rng = random.Random(5)
    tokens = [b"%012x" % rng.getrandbits(48) for _ in range(40_000)]  # all distinct
    lines = [b" ".join(tokens[i : i + 50]) for i in range(0, len(tokens), 50)]
    data = real_text(300_000) + b"\n".join(lines) + b"\n" + messy_corpus(lines=500)
    (tmp_path / "in.txt").write_bytes(data)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))  # the runs' directory (this process's runners)
    mixed = write_job(tmp_path, MIXED_JOB, "mixed.py")
    for job, fmt in [
        (WORDCOUNT, "text"),
        (WORDCOUNT, "jsonl"),
        (WORDCOUNT, "parquet"),
        (mixed, "text"),
        (mixed, "parquet"),
    ]:
        outputs = []
        for memory in (None, 12 << 10):
            out = tmp_path / f"{job.stem}-{fmt}-{memory}"
            settings = BatchSettings(
                inputs=[str(tmp_path / "in.txt")],
                output=out,
                runner=runner,
                fmt=fmt,
                reducers=1,  # 30 splits' partials: the reducer spills more runs than a merge takes
                block_size=32 << 10,
                reduce_memory=memory,
            )
            report = run_batch(JobSpec(load_job(job), index=job == mixed), settings, progress=False)
            spilled = report.counters.get(("Map-Reduce Framework", "Spilled Records"))
            assert (spilled > 50_000) if memory else not spilled, (job, fmt, memory, spilled)
            outputs.append(out)
        files = sorted(str(p.relative_to(outputs[0])) for p in outputs[0].rglob("*") if p.is_file())
        assert files == sorted(str(p.relative_to(outputs[1])) for p in outputs[1].rglob("*") if p.is_file())
        for name in files:
            if name != "_COUNTERS.json":
                assert (outputs[0] / name).read_bytes() == (outputs[1] / name).read_bytes(), (job, fmt, name)
    assert {k: int(v) for k, v in read_parts(tmp_path / "wordcount-text-12288").items()} == oracle_wordcount(data)
    assert not list(tmp_path.glob("mrkafka-spill-*"))


def test_a_map_that_raises_names_file_and_offset_and_commits_nothing(runner: str, tmp_path: Path) -> None:
    job = write_job(tmp_path, PICKY_JOB, "picky.py")
    (tmp_path / "in.txt").write_bytes(b"good\n" * 100 + b"bad\n" + b"good\n")
    with pytest.raises(JobFailedError, match=r"map raised ValueError: no bad lines .*in\.txt at byte 500"):
        run_batch(
            JobSpec(load_job(job)),
            BatchSettings(inputs=[str(tmp_path / "in.txt")], output=tmp_path / "out", runner=runner, block_size=64),
        )
    assert not (tmp_path / "out").exists()


def test_finish_and_python_values(runner: str, tmp_path: Path) -> None:
    job = write_job(
        tmp_path,
        """
        from mrkafka import Job
        class Average(Job):
            def map(self, offset, line):
                name, value = line.split(",")
                yield name, (int(value), 1)
            def reduce(self, a, b):
                return (a[0] + b[0], a[1] + b[1])
            def finish(self, key, value):
                return value[0] / value[1]
        """,
        "avg.py",
    )
    (tmp_path / "in.txt").write_text("a,1\nb,4\na,2\na,6\n")
    spec = JobSpec(load_job(job))
    run_batch(
        spec,
        BatchSettings(
            inputs=[str(tmp_path / "in.txt")], output=tmp_path / "out", runner=runner, reducers=1, block_size=5
        ),
    )
    assert (tmp_path / "out" / "part-r-00000").read_text() == "a\t3.0\nb\t4.0\n"


BAD_VALUES_JOB = """
from mrkafka import Job


class BadValues(Job):
    parameters = {"kind": "float"}

    def map(self, offset, line):
        kind = self.params["kind"]
        if line == "b":  # the second line: the first key is fine
            key = {"float": 1.5, "none": None, "tuple": (1, 2), "bool": True, "mixed": 7}.get(kind, line)
            yield key, (lambda: 1) if kind == "lambda" else 1
        else:
            yield line, 1

    def reduce(self, a, b):
        return a
"""


@pytest.mark.parametrize(
    "kind,message",
    [
        ("float", "map emitted a float key 1.5: keys are str, bytes or int (in.txt at byte 2)"),
        ("none", "map emitted a NoneType key None: keys are str, bytes or int (in.txt at byte 2)"),
        ("tuple", "map emitted a tuple key (1, 2): keys are str, bytes or int (in.txt at byte 2)"),
        ("bool", "map emitted a bool key True: keys are str, bytes or int (in.txt at byte 2)"),
        ("mixed", "map emitted a int key 7 after str keys: a job's keys are of one kind (in.txt at byte 2)"),
        ("lambda", "map emitted a function value (<function"),
    ],
)
def test_what_a_job_emits_wrongly_is_one_line_on_both_runners(
    runner: str, tmp_path: Path, kind: str, message: str
) -> None:
    job = write_job(tmp_path, BAD_VALUES_JOB)
    (tmp_path / "in.txt").write_text("a\nb\nc\n")
    with pytest.raises(JobFailedError) as failed:
        run_batch(
            JobSpec(load_job(job), {"kind": kind}),
            BatchSettings(inputs=[str(tmp_path / "in.txt")], output=tmp_path / "out", runner=runner),
            progress=False,
        )
    assert message.replace("(in.txt", f"({tmp_path / 'in.txt'}") in str(failed.value)
    assert str(tmp_path / "in.txt") in str(failed.value)
    assert failed.value.exit_code == 5
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_a_broken_gzip_file_is_bad_input_on_both_runners(runner: str, tmp_path: Path, damage: str) -> None:
    import gzip

    from mrkafka.errors import BadInputError

    data = gzip.compress(b"some words\n" * 10_000)
    data = data[: len(data) // 2] if damage == "truncated" else data[:20] + b"\x00" * 50 + data[70:]
    (tmp_path / "in.txt.gz").write_bytes(data)
    with pytest.raises(BadInputError, match=r"in\.txt\.gz is not a readable gzip file"):
        wordcount(runner, [tmp_path / "in.txt.gz"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_many_reducers_share_few_actors(ray_cluster, messy_file: Path, tmp_path: Path) -> None:
    # 100 reduce partitions on a 2-CPU Ray: 4 reducer processes, not 100.
    wordcount("ray", [messy_file], tmp_path / "ray", reducers=100)
    wordcount("inline", [messy_file], tmp_path / "inline", reducers=100)
    for k in range(100):
        name = f"part-r-{k:05d}"
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "inline" / name).read_bytes(), name
    assert {k: int(v) for k, v in read_parts(tmp_path / "ray").items()} == dict(
        oracle_wordcount(messy_file.read_bytes())
    )


def test_an_input_a_task_cannot_see_is_named_with_its_node(runner: str, tmp_path: Path) -> None:
    """What a worker on a node without the driver's files meets: an input the driver planned
    is not there when its task reads it (here: the map of a.txt deletes b.txt)."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("delete b\nx\n")
    (tmp_path / "in" / "b.txt").write_text("y\n")
    job = write_job(
        tmp_path,
        f"""
        import os
        from mrkafka import Job
        class Deleting(Job):
            def map(self, offset, line):
                if line == "delete b":
                    os.remove({str(tmp_path / "in" / "b.txt")!r})
                yield line, 1
            def reduce(self, a, b):
                return a + b
        """,
    )
    one_at_a_time = {"mappers": 1} if runner != "inline" else {}  # a.txt's map before b.txt is read
    settings = BatchSettings(inputs=[str(tmp_path / "in")], output=tmp_path / "out", runner=runner, **one_at_a_time)
    node = r"(host \S+|node \d+\.\d+\.\d+\.\d+ \(.+\))"
    missing = re.escape(str(tmp_path / "in" / "b.txt"))
    with pytest.raises(BadInputError, match=rf"input {missing} is not on {node}: .* every node shares"):
        run_batch(JobSpec(load_job(job)), settings)
    assert not (tmp_path / "out").exists()
