"""The command line's answers to what users get wrong: one line, a non-zero exit."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from mrkafka.cli import main
from tests.helpers import WORDCOUNT, cli, oracle_wordcount, read_parts


def test_inline_run_writes_parts_and_counters(tmp_path: Path, messy_file: Path) -> None:
    out = tmp_path / "out"
    code, err = cli(
        "run",
        str(WORDCOUNT),
        "--input",
        str(messy_file),
        "--output",
        str(out),
        "--runner",
        "inline",
        "--block-size",
        "16KiB",
    )
    assert code == 0, err
    assert "Map input records=" in err and "Reduce output records=" in err
    assert {k: int(v) for k, v in read_parts(out).items()} == dict(oracle_wordcount(messy_file.read_bytes()))


def test_missing_job_file(tmp_path: Path, messy_file: Path) -> None:
    code, err = cli("run", "nope.py", "--input", str(messy_file), "--output", str(tmp_path / "o"))
    assert code == 3 and err == "mrkafka: error: job file not found: nope.py\n"


def test_existing_output(tmp_path: Path, messy_file: Path) -> None:
    (tmp_path / "o").mkdir()
    args = ["--input", str(messy_file), "--output", str(tmp_path / "o"), "--runner", "inline"]
    code, err = cli("run", str(WORDCOUNT), *args)
    assert code == 4 and "--overwrite" in err


def test_job_error_shows_traceback_only_with_debug(tmp_path: Path) -> None:
    job = tmp_path / "boom.py"
    job.write_text(
        "from mrkafka import Job\nclass Boom(Job):\n    def map(self, k, v):\n        raise KeyError(v)\n"
        "    def reduce(self, a, b):\n        return a\n"
    )
    (tmp_path / "in.txt").write_text("x\n")
    args = ["run", str(job), "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "o"), "--runner", "inline"]
    code, err = cli(*args)
    assert code == 5 and err.startswith("mrkafka: error: map raised KeyError") and "in.txt at byte 0" in err
    assert err.count("\n") == 1
    code, err = cli("--debug", *args)
    assert code == 5 and "Traceback" in err and "raise KeyError(v)" in err


def test_stream_errors_before_anything_starts(tmp_path: Path) -> None:
    code, err = cli("run", str(WORDCOUNT), "--stream")
    assert code == 2 and "--stream needs --input-topic" in err
    code, err = cli("run", str(WORDCOUNT), "--stream", "--input-topic", "t", "--output", str(tmp_path / "o"))
    assert code == 2 and "--output needs --until-end" in err
    # Port 1 on the loopback: nothing listens there, so the connection is refused at once.
    # (The driver waits out a broker that is away for up to --task-timeout.)
    code, err = cli(
        "run",
        str(WORDCOUNT),
        "--stream",
        "--input-topic",
        "t",
        "--bootstrap-servers",
        "127.0.0.1:1",
        "--task-timeout",
        "1",
    )
    assert code == 8 and "no Kafka broker answers at 127.0.0.1:1" in err and err.count("\n") == 1


def test_lookup_cli(tmp_path: Path) -> None:
    out = tmp_path / "o"
    job = str(WORDCOUNT.parent / "prefix_index.py")
    data = tmp_path / "in.txt"
    data.write_text("Mukesh Mukund Mukesh\n")
    assert cli("run", job, "--input", str(data), "--output", str(out), "--runner", "inline")[0] == 0
    result = CliRunner().invoke(main, ["lookup", str(out), "Muk"])
    assert result.exit_code == 0 and result.stdout == "Muk\tMukesh\t2\nMuk\tMukund\t1\n"
    code, err = cli("lookup", str(out), "Zz")
    assert code == 1 and "no key 'Zz'" in err
    (out / "_SUCCESS").unlink()
    code, err = cli("lookup", str(out), "Muk")
    assert code == 2 and "not a finished output" in err


def test_the_lookup_index_is_written_when_asked_for(tmp_path: Path) -> None:
    """prefix_index asks for it itself; word count with --index; without one, lookup reads the
    parts and says so once, on stderr."""
    data = tmp_path / "in.txt"
    data.write_text("kafka streams kafka\nbatch\n")
    out = tmp_path / "o"
    run = ["run", str(WORDCOUNT), "--input", str(data), "--output", str(out), "--runner", "inline", "--reducers", "3"]
    assert cli(*run)[0] == 0
    assert not (out / "_index").exists()
    result = CliRunner().invoke(main, ["lookup", str(out), "kafkaa", "--fuzzy", "1"])  # reads all 3 parts
    assert result.exit_code == 0 and result.stdout == "kafka\t2\n"
    assert result.stderr == f"{out} has no lookup index: its parts are read whole (a run with --index writes one)\n"
    assert cli(*run, "--index", "--overwrite")[0] == 0
    assert sorted(p.name for p in (out / "_index").iterdir()) == [
        f"part-r-0000{k}.{what}.arrow" for k in range(3) for what in ("keys", "trie")
    ]
    result = CliRunner().invoke(main, ["lookup", str(out), "kafkaa", "--fuzzy", "1"])
    assert result.exit_code == 0 and result.stdout == "kafka\t2\n" and result.stderr == ""
    code, err = cli(*run, "--index", "--overwrite", "--reducers", "0")
    assert code == 2 and err.count("\n") == 1 and "--index applies only with reducers" in err
