"""The output commit seen from outside: runs SIGKILLed at every step of a commit, pairs of runs
racing for one output, and what the kernel was asked to make durable (strace's record)."""

from __future__ import annotations

import collections
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mrkafka.core.counters import Counters
from mrkafka.errors import OutputExistsError
from mrkafka.io.commit import OutputCommitter
from tests.helpers import WORDCOUNT, oracle_wordcount

OLD = b"old words old\nwords of the old run\n"
NEW = b"new words\nthe new run's words\n"


def run(data: Path, out: Path, *extra: str, **env: str) -> subprocess.CompletedProcess:
    """``mrkafka run`` of word count in its own process: inline, two reducers, with the lookup
    index (a directory among the files a commit moves)."""
    args = ["run", str(WORDCOUNT), "--input", str(data), "--output", str(out), "--runner", "inline"]
    args += ["--reducers", "2", "--index"]
    return subprocess.run(
        [sys.executable, "-m", "mrkafka.cli", *args, *extra],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def counted(*directories: Path) -> collections.Counter:
    """Word counts over the part files of ``directories`` together, each key in one part only."""
    return counted_parts([part for directory in directories for part in directory.glob("part-r-*")])


def counted_parts(parts: list[Path]) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for part in parts:
        for line in part.read_bytes().splitlines():
            key, _, value = line.rpartition(b"\t")
            assert key not in counts, f"{key!r} in two parts"
            counts[key] = int(value)
    return counts


def whole(out: Path) -> collections.Counter | None:
    """The counts of ``out`` if it is a whole output (``_SUCCESS`` naming each part and its size,
    two parts, their indexes); else None."""
    names = sorted(p.name for p in out.iterdir())
    if names != ["_COUNTERS.json", "_SUCCESS", "_index", "part-r-00000", "part-r-00001"]:
        return None
    assert len(list((out / "_index").iterdir())) == 4
    parts = {p.name: p.stat().st_size for p in out.glob("part-*")}
    assert json.loads((out / "_SUCCESS").read_bytes()) == {"parts": parts}
    return counted(out)


def committed(out: Path) -> collections.Counter:
    """The counts of a decided commit's parts: each where it is, in ``_temporary/`` until it moved."""
    names = json.loads((out / "_COMMITTING").read_bytes()) if (out / "_COMMITTING").exists() else {}
    temporary = out / "_temporary"
    moving = [temporary / n if (temporary / n).exists() else out / n for n in names if n.startswith("part-")]
    return counted_parts(moving) if moving else counted(out)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The old and the new input, and a committed output of the old one."""
    root = tmp_path_factory.mktemp("commit")
    (root / "old.txt").write_bytes(OLD)
    (root / "new.txt").write_bytes(NEW)
    done = run(root / "old.txt", root / "old-output")
    assert done.returncode == 0, done.stderr
    return root / "old.txt", root / "new.txt", root / "old-output"


KILLS = ["commit-decide:1", "commit-part:1", "commit-part:4", "commit-output:1", "commit-success:1"]


@pytest.mark.parametrize("point", KILLS)
def test_a_run_killed_at_any_step_of_its_commit_leaves_one_whole_output(
    inputs: tuple[Path, Path, Path], tmp_path: Path, point: str
) -> None:
    old, new, old_output = inputs
    out = tmp_path / "out"
    shutil.copytree(old_output, out)
    killed = run(new, out, "--overwrite", MRKAFKA_FAULT=point)
    assert killed.returncode == -9, killed.stderr
    old_success = (old_output / "_SUCCESS").read_bytes()
    decided = (out / "_COMMITTING").exists() or (out / "_SUCCESS").read_bytes() != old_success
    if decided:  # the new output, whole between OUTPUT and _temporary/
        assert committed(out) == oracle_wordcount(NEW)
    else:  # the old output, untouched
        assert point == "commit-decide:1"
        assert whole(out) is None and counted(out) == oracle_wordcount(OLD)

    refused = run(new, out)  # the next run on the output finishes or undoes the commit, then refuses
    assert refused.returncode == 4 and "exists" in refused.stderr, refused.stderr
    assert whole(out) == oracle_wordcount(NEW if decided else OLD)
    again = run(new, out, "--overwrite")
    assert again.returncode == 0, again.stderr
    assert whole(out) == oracle_wordcount(NEW)


def _contend(barrier, root: Path, name: str, rounds: int) -> None:
    """One of a pair: each round, take output ``root/out-N`` with --overwrite and commit a part
    naming this process, while the other does the same."""
    for n in range(rounds):
        barrier.wait(timeout=60)  # broken if the other one failed
        out = root / f"out-{n}"
        try:
            committer = OutputCommitter(out, overwrite=True)
            committer.setup(1, map_only=True)
        except OutputExistsError:
            continue
        holding = os.open(root / f"holding-{n}", os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # fails if both hold it
        Path(committer.task_path("part-m-00000")).write_text(name)
        os.close(holding)
        os.unlink(root / f"holding-{n}")
        committer.commit(Counters())
        (root / f"won-{n}-{name}").touch()


def test_two_runs_never_hold_one_output_together(tmp_path: Path) -> None:
    rounds = 50
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(2)
    pair = [spawn.Process(target=_contend, args=(barrier, tmp_path, name, rounds), daemon=True) for name in "ab"]
    for process in pair:
        process.start()
    for process in pair:
        process.join(timeout=180)
    assert [p.exitcode for p in pair] == [0, 0], "a run failed: two held the output, or one lost its part"
    for n in range(rounds):
        winners = {name for name in "ab" if (tmp_path / f"won-{n}-{name}").exists()}
        out = tmp_path / f"out-{n}"
        assert winners and sorted(p.name for p in out.iterdir()) == ["_COUNTERS.json", "_SUCCESS", "part-m-00000"]
        assert (out / "part-m-00000").read_text() in winners


def test_every_file_is_on_disk_before_its_success(inputs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """Each file of the new output is fsynced before the commit is decided; the output
    directory after the files move in and before ``_SUCCESS``; ``_SUCCESS`` and the directory
    after it. strace records the system calls, a record of the kernel's, not of ours."""
    old, new, old_output = inputs
    out = tmp_path / "out"
    shutil.copytree(old_output, out)
    trace = tmp_path / "trace"
    command = ["strace", "-f", "-y", "-qq", "-e", "trace=fsync,rename,renameat,renameat2,openat", "-o", str(trace)]
    done = subprocess.run(
        [*command, sys.executable, "-m", "mrkafka.cli", "run", str(WORDCOUNT), "--input", str(new)]
        + ["--output", str(out), "--runner", "inline", "--reducers", "2", "--overwrite", "--index"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert whole(out) == oracle_wordcount(NEW)
    calls = []  # (call, the path it names first), in order, for the calls on out/ that succeeded
    for line in trace.read_text().splitlines():
        found = re.match(r"\d+ +(\w+)\((.*)", line)  # a call, or its first half: "... <unfinished ...>"
        if found is None or re.search(r"\) += -1 ", line):  # "<... resumed>" halves; failed calls
            continue
        call, arguments = found.groups()
        path = re.search(r"<([^>]*)>" if call == "fsync" else r'"([^"]*)"', arguments)
        if path and path.group(1).startswith(str(out)):
            calls.append((call, os.path.relpath(path.group(1), out)))
    synced = [path for call, path in calls if call == "fsync"]
    decided = calls.index(("rename", "_temporary/_COMMITTING"))
    for file in ["_COUNTERS.json", "part-r-00000", "part-r-00001", "_index", *os.listdir(out / "_index")]:
        where = f"_temporary/_index/{file}" if file.endswith(".arrow") else f"_temporary/{file}"
        assert ("fsync", where) in calls[:decided], f"{where} not fsynced before the commit"
    moved_in = max(i for i, (call, path) in enumerate(calls) if call == "rename" and path.startswith("_temporary/"))
    success = calls.index(("openat", "_SUCCESS"))
    assert ("fsync", ".") in calls[moved_in:success], "the directory was not fsynced before _SUCCESS"
    assert synced[-2:] == ["_SUCCESS", "."]
