"""What users get wrong, met where they meet it: the command line. Each answer is one line,
the README's exit code, and nothing already written is lost."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from mrkafka.cli import main
from tests.helpers import WORDCOUNT, cli, oracle_wordcount, read_parts


def wordcount(inputs: list[Path], output: Path | str, *extra: str) -> tuple[int, str]:
    args = [a for path in inputs for a in ("--input", str(path))]
    return cli("run", str(WORDCOUNT), *args, "--output", str(output), "--runner", "inline", *extra)


def one_line(err: str) -> bool:
    return err.count("\n") == 1 and "Traceback" not in err


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory that is someone's project: a .git, a README, an input."""
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (tmp_path / "README.md").write_text("mine\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.txt").write_text("a b a\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("output", [".", "..", "data"])
def test_overwrite_never_deletes_what_mrkafka_did_not_write(checkout: Path, output: str) -> None:
    before = files_of(checkout)
    code, err = wordcount([checkout / "data" / "in.txt"], output, "--overwrite")
    assert code in (2, 4) and one_line(err), err
    assert files_of(checkout) == before


def test_overwrite_refuses_a_directory_with_other_files(checkout: Path) -> None:
    (checkout / "out").mkdir()
    (checkout / "out" / "part-r-00000").write_text("a\t1\n")
    (checkout / "out" / "notes.txt").write_text("keep me\n")
    code, err = wordcount([checkout / "data"], "out", "--overwrite")
    assert code == 4 and one_line(err) and "notes.txt" in err
    assert (checkout / "out" / "notes.txt").read_text() == "keep me\n"


def test_overwrite_replaces_a_previous_output(checkout: Path) -> None:
    assert wordcount([checkout / "data"], "out")[0] == 0
    (checkout / "data" / "in.txt").write_text("c\n")
    code, err = wordcount([checkout / "data"], "out", "--overwrite")
    assert code == 0, err
    assert read_parts(checkout / "out") == {b"c": b"1"}


def test_leftovers_of_a_killed_run_are_replaced(checkout: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    out = checkout / "out"
    (out / "_temporary").mkdir(parents=True)
    (out / "_temporary" / "part-r-00000").write_text("half")
    (out / "_LOCK").write_text(f"{socket.gethostname()} {dead.stdout.strip()}\n")
    code, err = wordcount([checkout / "data"], "out")
    assert code == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert names == ["_COUNTERS.json", "_SUCCESS", "part-r-00000", "part-r-00001"]


def test_a_second_run_on_an_output_being_written_is_refused(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(
        "import time\nfrom mrkafka import Job\n\n\nclass Slow(Job):\n    def map(self, offset, line):\n"
        "        time.sleep(0.01)\n        yield line, 1\n\n    def reduce(self, a, b):\n        return a + b\n"
    )
    (tmp_path / "in.txt").write_bytes(b"".join(b"%d\n" % (i % 10) for i in range(500)))  # 5 s of map
    out = tmp_path / "out"
    args = [
        "run",
        str(tmp_path / "slow.py"),
        "--input",
        str(tmp_path / "in.txt"),
        "--output",
        str(out),
        "--runner",
        "inline",
        "--overwrite",
    ]
    with subprocess.Popen([sys.executable, "-m", "mrkafka.cli", *args], stderr=subprocess.PIPE) as first:
        deadline = time.monotonic() + 60
        while not (out / "_LOCK").exists():
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
            time.sleep(0.05)
        code, err = cli(*args)
        assert code == 4 and one_line(err) and f"being written by process {first.pid}" in err, err
        assert first.wait(timeout=60) == 0, first.stderr.read()
    assert read_parts(out) == {b"%d" % i: b"50" for i in range(10)}


def test_input_directories_are_read_recursively(tmp_path: Path) -> None:
    (tmp_path / "in" / "2026" / "11").mkdir(parents=True)
    (tmp_path / "in" / "top.txt").write_bytes(b"a b\n")
    (tmp_path / "in" / "2026" / "11" / "deep.txt").write_bytes(b"b c\n")
    (tmp_path / "in" / "2026" / "_hidden.txt").write_bytes(b"z\n")
    (tmp_path / "in" / ".cache").mkdir()
    (tmp_path / "in" / ".cache" / "x.txt").write_bytes(b"z\n")
    code, err = wordcount([tmp_path / "in"], tmp_path / "out")
    assert code == 0, err
    assert {k: int(v) for k, v in read_parts(tmp_path / "out").items()} == oracle_wordcount(b"a b\nb c\n")


@pytest.mark.parametrize("extra", [[], ["--no-vectorize"], ["--block-size", "64"], ["--reducers", "1"]])
def test_sums_are_exact_beyond_64_bits(tmp_path: Path, extra: list[str]) -> None:
    # Each 64-byte split's sum fits in 64 bits, the total does not.
    numbers = [2**61 + 1, 3, 2**61 - 1, -5] * 10
    (tmp_path / "in.txt").write_text("".join(f"{n}\n" for n in numbers))
    code, err = cli(
        "run",
        str(WORDCOUNT.parent / "odd_sum.py"),
        "--input",
        str(tmp_path / "in.txt"),
        "--output",
        str(tmp_path / "out"),
        "--runner",
        "inline",
        *extra,
    )
    assert code == 0, err
    assert read_parts(tmp_path / "out") == {b"odd_sum": str(sum(n for n in numbers if n % 2)).encode()}


@pytest.mark.parametrize("pattern", [r"\s+", r"[\s,]+", r"[^\S\t]+", r"\W+", r"[]\s]", r"\\s|\s"])
def test_a_pattern_means_the_same_in_both_forms(tmp_path: Path, pattern: str) -> None:
    import random

    rng = random.Random(pattern)
    alphabet = [b"a", b"b", b"s", b"\\", b"]", b",", b" ", b"\t", b"\n", b"\v", b"\f", b"\r", b"\xff"]
    (tmp_path / "in.txt").write_bytes(b"".join(rng.choice(alphabet) for _ in range(20_000)))
    outputs = []
    for form in ([], ["--no-vectorize"]):
        code, err = wordcount([tmp_path / "in.txt"], tmp_path / f"out{len(form)}", "-p", f"pattern={pattern}", *form)
        assert code == 0, err
        outputs.append(read_parts(tmp_path / f"out{len(form)}"))
    assert outputs[0] == outputs[1]
    if pattern == r"\s+":  # Python's \s, which includes \v
        assert outputs[0] and not any(b"\v" in word for word in outputs[0])


def test_a_bad_pattern_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_bytes(b"a\n")
    code, err = wordcount([tmp_path / "in.txt"], tmp_path / "out", "-p", "pattern=(")
    assert code == 3 and one_line(err) and "pattern '(' is not a regular expression" in err, err


FIELDS_JOB = '''
from mrkafka import Job


class Fields(Job):
    """KEY VALUE per line: the key as given (or an int with -p ints=true), the values summed."""

    parameters = {"ints": False}

    def map(self, offset, line):
        key, _, value = line.partition(" ")
        yield (int(key) if self.params["ints"] else key), float(value)

    def reduce(self, a, b):
        return a + b
'''


def run_fields(tmp_path: Path, data: bytes, fmt: str, *extra: str) -> tuple[int, str, Path]:
    (tmp_path / "fields.py").write_text(FIELDS_JOB)
    (tmp_path / "in.txt").write_bytes(data)
    out = tmp_path / f"out-{len(list(tmp_path.glob('out-*')))}"
    code, err = cli(
        "run",
        str(tmp_path / "fields.py"),
        "--input",
        str(tmp_path / "in.txt"),
        "--output",
        str(out),
        "--runner",
        "inline",
        "--reducers",
        "4",
        "--format",
        fmt,
        *extra,
    )
    return code, err, out


def test_parquet_parts_share_one_schema(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    data = b"".join(b"k%d 1.5\n" % i for i in range(40)) + b"caf\xe9 2\n\xff\xfe 3\n"
    code, err, out = run_fields(tmp_path, data, "parquet")
    assert code == 0, err
    parts = sorted(out.glob("part-r-*"))
    assert len({pq.read_schema(p).field("key").type for p in parts}) == 1
    for order in (parts, parts[::-1]):
        assert pq.ParquetDataset([str(p) for p in order]).read().num_rows == 42
    code, err, out = run_fields(tmp_path, b"".join(b"%d 1\n" % i for i in range(-20, 20)), "parquet", "-p", "ints=1")
    assert code == 0, err
    table = pq.read_table(out)
    assert table.schema.field("key").type == "int64" and sorted(table.column("key").to_pylist()) == list(range(-20, 20))


def test_json_lines_are_json_and_keep_every_byte(tmp_path: Path) -> None:
    data = b"caf\xe9 2\n\xff\xfe 3\nplain 1\n"
    code, err, out = run_fields(tmp_path, data, "jsonl")
    assert code == 0, err
    rows = {}
    for part in out.glob("part-r-*"):
        part.read_bytes().decode("utf-8")  # valid UTF-8 throughout
        for line in part.read_text().splitlines():
            row = json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
            rows[row["key"].encode("utf-8", "surrogateescape")] = row["value"]
    assert rows == {b"caf\xe9": 2.0, b"\xff\xfe": 3.0, b"plain": 1.0}
    code, err, out = run_fields(tmp_path, b"x inf\n", "jsonl")
    assert code == 5 and one_line(err) and "key 'x'" in err and "--format text" in err


@pytest.mark.parametrize("index", [[], ["--index"]])
@pytest.mark.parametrize("fmt", ["text", "jsonl", "parquet"])
def test_lookup_finds_keys_in_every_format(tmp_path: Path, fmt: str, index: list[str]) -> None:
    """Through the lookup index, and without one (the parts read whole)."""
    code, err, out = run_fields(tmp_path, b"".join(b"w%d %d\n" % (i, i) for i in range(50)), fmt, *index)
    assert code == 0, err
    for i in range(50):
        result = CliRunner().invoke(main, ["lookup", str(out), f"w{i}"])
        assert result.exit_code == 0 and result.stdout == f"w{i}\t{float(i)}\n", (i, result.stderr)
    code, err, out = run_fields(tmp_path, b"".join(b"%d %d\n" % (i, i) for i in range(30)), fmt, "-p", "ints=1", *index)
    assert code == 0, err
    for i in range(30):
        result = CliRunner().invoke(main, ["lookup", str(out), str(i)])
        assert result.exit_code == 0 and result.stdout == f"{i}\t{float(i)}\n", (i, result.stderr)


@pytest.mark.parametrize(
    "args,code,message",
    [
        (["--block-size", "1"], 2, "use a larger block size"),
        (["--mappers", "-1"], 2, "'--mappers': -1 is not in the range"),
        (["--mappers", "0"], 2, "'--mappers': 0 is not in the range"),
        (["--reducers", "-2"], 2, "'--reducers': -2 is not in the range"),
        (["--runner", "ray", "--ray-address", "127.0.0.1:1"], 6, "cannot reach Ray at 127.0.0.1:1"),
        (["--no-such-option"], 2, "No such option '--no-such-option'"),
        (["--input", "no/such/file"], 2, "input not found: no/such/file"),
        (["--block-size", "12 parsecs"], 2, "not a size"),
        (["-p", "x=1"], 3, "has no parameter 'x'"),
        (["--job", "Nope"], 3, "no Job class 'Nope'"),
    ],
)
def test_bad_options_are_one_line_at_once(tmp_path: Path, args: list[str], code: int, message: str) -> None:
    (tmp_path / "in.txt").write_bytes(b"a b\n" * 50_000)  # 200 KB: 200,000 splits of one byte
    exit_code, err = cli(
        "run",
        str(WORDCOUNT),
        "--input",
        str(tmp_path / "in.txt"),
        "--output",
        str(tmp_path / "out"),
        "--runner",
        "inline",
        *args,
    )
    assert exit_code == code and one_line(err) and message in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--stream", "--input-topic", "t", "--runner", "inline"], "--runner applies only to batch runs"),
        (["--stream", "--input-topic", "t", "--block-size", "1MiB"], "--block-size applies only to batch runs"),
        (["--stream", "--input-topic", "t", "--input", "x.txt"], "--input applies only to batch runs"),
        (["--stream", "--input-topic", "t", "--format", "jsonl"], "--format applies only with --output"),
        (["--stream", "--input-topic", "t", "--overwrite"], "--overwrite applies only with --output"),
        (["--stream", "--input-topic", "t", "--output", "o"], "--output needs --until-end"),
        (["--stream"], "--stream needs --input-topic"),
        (["--input", "x.txt", "--output", "o", "--input-topic", "t"], "--input-topic applies only to stream runs"),
        (["--input", "x.txt", "--output", "o", "--until-end"], "--until-end applies only to stream runs"),
        (["--input", "x.txt", "--output", "o", "--guarantee", "at-least-once"], "--guarantee applies only to stream"),
        (["--input", "x.txt", "--output", "o", "--bootstrap-servers", "h:1"], "--bootstrap-servers applies only"),
        (["--input", "x.txt", "--output", "o", "--state-dir", "s"], "--state-dir applies only to stream runs"),
        (["--input", "x.txt", "--output", "o", "--runner", "inline", "--mappers", "2"], "--mappers applies only with"),
        (["--input", "x.txt", "--output", "o", "--runner", "inline", "--ray-address", "h:1"], "--ray-address applies"),
        (["--input", "x.txt"], "no --output given"),
        (["--output", "o"], "no --input given"),
    ],
)
def test_an_option_the_mode_does_not_use_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    # Refused before anything starts: no Kafka at the default address, no Ray, no output.
    monkeypatch.chdir(tmp_path)
    code, err = cli("run", str(WORDCOUNT), *args)
    assert code == 2 and one_line(err) and message in err, err
    assert not Path("o").exists()


def test_options_from_the_environment_are_not_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # RAY_ADDRESS and MRKAFKA_BOOTSTRAP_SERVERS serve every command: a batch run on the inline runner ignores them.
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    monkeypatch.setenv("MRKAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    (tmp_path / "in.txt").write_bytes(b"a b a\n")
    code, err = wordcount([tmp_path / "in.txt"], tmp_path / "out")
    assert code == 0, err
    assert read_parts(tmp_path / "out") == {b"a": b"2", b"b": b"1"}


def test_stream_mappers_are_validated_before_kafka() -> None:
    for mappers in ("0", "-1"):
        code, err = cli("run", str(WORDCOUNT), "--stream", "--input-topic", "t", "--mappers", mappers)
        assert code == 2 and one_line(err) and "--mappers" in err, err


def test_a_bad_state_dir_is_one_line_before_kafka(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("a file where the directory should be")
    code, err = cli(
        "run",
        str(WORDCOUNT),
        "--stream",
        "--input-topic",
        "t",
        "--state",
        "rocksdb",
        "--state-dir",
        str(tmp_path / "state" / "sub"),
        "--bootstrap-servers",
        "127.0.0.1:1",
    )
    assert code == 2 and one_line(err) and "--state-dir" in err, err


@pytest.mark.parametrize(
    "args",
    [["--port", "65500"], ["--port", "0"], ["--brokers", "6"], ["--broker-ids", "10,x"], ["--broker-ids", "1,1"]],
)
def test_kafka_up_checks_its_options_first(tmp_path: Path, args: list[str]) -> None:
    code, err = cli("kafka", "up", "--data-dir", str(tmp_path / "k"), *args)
    assert code == 2 and one_line(err) and args[0] in err, err
    assert not (tmp_path / "k").exists()


def test_on_error_skip_in_batch(tmp_path: Path) -> None:
    from tests.helpers import PICKY_JOB, write_job

    job = write_job(tmp_path, PICKY_JOB)
    (tmp_path / "in.txt").write_bytes(b"a\nbad\nb\na\nbad\n")
    args = ["run", str(job), "--input", str(tmp_path / "in.txt"), "--runner", "inline"]
    code, err = cli(*args, "--output", str(tmp_path / "failed"))
    assert code == 5 and one_line(err) and "in.txt at byte 2" in err
    code, err = cli(*args, "--output", str(tmp_path / "skipped"), "--on-error", "skip")
    assert code == 0 and "bad_records=2" in err, err
    assert read_parts(tmp_path / "skipped") == {b"a": b"2", b"b": b"1"}


def test_every_option_and_command_is_explained() -> None:
    import click

    def commands(group: click.Group, path: str):
        for name, command in group.commands.items():
            yield f"{path} {name}", command
            if isinstance(command, click.Group):
                yield from commands(command, f"{path} {name}")

    for path, command in commands(main, "mrkafka"):
        assert command.help, path
        assert not command.get_short_help_str(limit=80).endswith("..."), path
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{path} {param.opts[0]}"
    for path in ("run", "produce", "consume"):
        result = CliRunner().invoke(main, [path, "--help"])
        assert "Examples:" in result.stdout, path


def test_an_internal_error_is_one_line_and_its_traceback_comes_with_debug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mrkafka.batch

    def broken(*args, **kwargs):
        raise RuntimeError("something mrkafka did not expect")

    monkeypatch.setattr(mrkafka.batch, "run_batch", broken)
    (tmp_path / "in.txt").write_text("a\n")
    code, err = wordcount([tmp_path / "in.txt"], tmp_path / "out")
    assert code == 1 and one_line(err) and "internal error: RuntimeError: something mrkafka" in err, err
    code, err = wordcount([tmp_path / "in.txt"], tmp_path / "out", "--debug")
    assert code == 1 and "Traceback" in err and err.endswith("(--debug shows the traceback)\n"), err


def test_a_map_only_run_reports_the_records_it_wrote(tmp_path: Path) -> None:
    data = b"a b\nc d e\n\nf\n"
    (tmp_path / "in.txt").write_bytes(data)
    code, err = wordcount([tmp_path / "in.txt"], tmp_path / "out", "--reducers", "0")
    words = sum(oracle_wordcount(data).values())
    assert code == 0 and f"records out {words}," in err, err


def test_kafka_status_of_a_directory_where_none_was_started_is_exit_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["kafka", "status", "--data-dir", str(tmp_path / "none")])
    assert result.exit_code == 1 and result.stdout.startswith("no Kafka was started in"), result.output


def test_lookup_says_what_is_wrong_with_what_it_was_given(tmp_path: Path) -> None:
    code, err = cli("lookup", str(tmp_path / "nothing"), "a")
    assert code == 2 and one_line(err) and f"no output at {tmp_path / 'nothing'}" in err, err
    (tmp_path / "half").mkdir()
    code, err = cli("lookup", str(tmp_path / "half"), "a")
    assert code == 2 and one_line(err) and "is not a finished output" in err, err


def test_lookup_finds_every_record_of_a_key_in_a_map_only_output(tmp_path: Path) -> None:
    data = b"a b a\nc a\nb\n" * 50
    (tmp_path / "in.txt").write_bytes(data)
    code, err = wordcount([tmp_path / "in.txt"], tmp_path / "out", "--reducers", "0", "--block-size", "64")
    assert code == 0, err
    result = CliRunner().invoke(main, ["lookup", str(tmp_path / "out"), "a"])
    assert result.exit_code == 0 and result.stdout.splitlines() == ["a\t1"] * oracle_wordcount(data)[b"a"]


def test_a_metrics_file_where_it_cannot_be_written_is_refused_before_the_run(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("a b a\n")
    code, err = wordcount([tmp_path / "in.txt"], tmp_path / "out", "--metrics-file", str(tmp_path / "no" / "m.prom"))
    assert code == 2 and one_line(err) and "--metrics-file" in err and "no such directory" in err, err
    assert not (tmp_path / "out").exists()


def test_rocksdb_state_without_rocksdict_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rocksdict", None)  # as where it is not installed: its import fails
    code, err = cli(
        "run",
        str(WORDCOUNT),
        "--stream",
        "--input-topic",
        "t",
        "--state",
        "rocksdb",
        "--bootstrap-servers",
        "127.0.0.1:9",
        "--task-timeout",
        "1",
    )
    assert code == 6 and one_line(err) and "pip install 'mrkafka[rocksdb]'" in err, err


def test_user_add_without_a_terminal_says_how_to_give_the_password(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["user", "add", "alice", "--bootstrap-servers", "127.0.0.1:9"], input="")
    assert result.exit_code == 2 and one_line(result.stderr), result.output
    assert "--password-file" in result.stderr and "Aborted" not in result.output, result.output


@pytest.mark.parametrize("command", [["user", "add", "bad name"], ["user", "add", "-x"], ["kafka", "cert", "../evil"]])
def test_a_name_that_is_no_principal_or_file_name_is_refused(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "data" / "clients").mkdir(parents=True)
    password = tmp_path / "pw"
    password.write_text("secret\n")
    options = ["--password-file", str(password), "--bootstrap-servers", "127.0.0.1:9"]
    if command[0] == "kafka":
        options = ["--data-dir", str(tmp_path / "data")]
    code, err = cli(*command[:2], *options, "--", command[2])
    assert code == 2 and one_line(err) and "is not a valid name" in err, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["clients", "data", "pw"]


def test_a_shared_directory_keeps_its_mode(tmp_path: Path) -> None:
    """A directory others share (sticky, as /tmp) is never made private: as a --state-dir it
    holds the application's own 0700 directory; as a broker's data directory it is refused."""
    from mrkafka.errors import BadInputError
    from mrkafka.kafka.security import private_dir

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    with pytest.raises(BadInputError, match="a directory others share"):
        private_dir(shared, "--data-dir")
    stream = ["run", str(WORDCOUNT), "--stream", "--input-topic", "t", "--application-id", "app"]
    code, err = cli(*stream, "--state-dir", str(shared), "--bootstrap-servers", "127.0.0.1:1", "--task-timeout", "1")
    assert code == 8, err  # it went on to Kafka
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert stat.S_IMODE((shared / "app").stat().st_mode) == 0o700


def test_lookup_prints_values_as_the_part_holds_them_and_reads_a_part_whose_index_is_damaged(tmp_path: Path) -> None:
    """The oracle is the part file's own line. A truncated index names its files once, on
    stderr, and the part answers the same."""
    out = tmp_path / "out"
    jobs = Path(__file__).resolve().parents[2] / "jobs"
    args = ["run", str(jobs / "sales_by_city.py"), "--input", str(jobs / "data" / "sales.jsonl")]
    code, err = cli(*args, "--output", str(out), "--reducers", "1", "--index")
    assert code == 0, err
    lines = (out / "part-r-00000").read_text().splitlines()
    key = lines[0].split("\t")[0]
    assert lines[0].split("\t")[1].startswith("{")  # a dict value, as JSON
    result = CliRunner().invoke(main, ["lookup", str(out), key])
    assert result.exit_code == 0 and result.stdout.splitlines() == [lines[0]], result.output
    trie = out / "_index" / "part-r-00000.trie.arrow"
    trie.write_bytes(trie.read_bytes()[:100])
    for extra in ([], ["--fuzzy", "1"]):
        result = CliRunner().invoke(main, ["lookup", str(out), key, *extra])
        assert result.exit_code == 0 and lines[0] in result.stdout.splitlines(), result.output
        assert one_line(result.stderr) and f"cannot read the lookup index {out / '_index'}" in result.stderr
        assert "trie.arrow" in result.stderr, result.stderr


@pytest.mark.parametrize("content", ["garbage{", "[1, 2]", '{"host": "127.0.0.1"}'])
def test_lookup_of_an_application_whose_endpoint_file_is_not_one(tmp_path: Path, content: str) -> None:
    (tmp_path / "app").mkdir()
    path = tmp_path / "app" / "query-endpoint.json"
    path.write_text(content)
    code, err = cli("lookup", "--application-id", "app", "--state-dir", str(tmp_path), "k")
    assert code == 2 and one_line(err) and f"{path} is not a query endpoint file" in err, err
