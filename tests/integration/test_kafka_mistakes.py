"""Mistakes met at the command line with a broker: one line, the README's exit code, nothing mixed or lost."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from mrkafka.cli import main
from mrkafka.devtools.console import produce_lines
from mrkafka.devtools.tools import tool_command
from mrkafka.kafka import admin
from mrkafka.stream import application
from tests.helpers import PICKY_JOB, WORDCOUNT, cli, oracle_wordcount, read_parts, write_job
from tests.stream_process import StreamRun, retrying

pytestmark = pytest.mark.integration

ODD_SUM = WORDCOUNT.parent / "odd_sum.py"


@pytest.fixture
def app(ray_cluster, bootstrap: str, topic_name: str, tmp_path: Path) -> dict:
    """An input topic holding some lines, and the options of a bounded run over it as application APP."""
    admin.create_topic(bootstrap, topic_name, partitions=2)
    data = b"".join(b"%d the quick %d\n" % (i % 7, i % 3) for i in range(300))
    (tmp_path / "in.txt").write_bytes(data)
    produce_lines(bootstrap, topic_name, str(tmp_path / "in.txt"), progress=False)
    name = f"{topic_name}-app"
    options = [
        "--stream",
        "--input-topic",
        topic_name,
        "--application-id",
        name,
        "--bootstrap-servers",
        bootstrap,
        "--until-end",
        "--commit-interval-ms",
        "200",
        "--state-dir",
        str(tmp_path / "state"),
    ]
    return {"name": name, "topic": topic_name, "options": options, "data": data}


def counts(output: Path) -> dict[bytes, int]:
    return {k: int(v) for k, v in read_parts(output).items()}


def test_another_job_under_the_same_application_id_is_refused(app: dict, bootstrap: str, tmp_path: Path) -> None:
    code, err = cli("run", str(WORDCOUNT), *app["options"], "--output", str(tmp_path / "wc"))
    assert code == 0, err
    before = admin.topic_offsets(bootstrap, f"{app['name']}-output")[1]
    code, err = cli("run", str(ODD_SUM), *app["options"], "--output", str(tmp_path / "odd"))
    assert code == 3 and err.count("\n") == 1, err
    assert "WordCount (wordcount" in err and "OddSum (odd_sum)" in err and f"mrkafka app reset {app['name']}" in err
    assert admin.topic_offsets(bootstrap, f"{app['name']}-output")[1] == before
    # Another parameter is another job's state too.
    code, err = cli("run", str(WORDCOUNT), *app["options"], "-p", "lower=true", "--output", str(tmp_path / "lower"))
    assert code == 3 and "lower=True" in err


def test_a_reducers_mismatch_leads_to_a_working_state(app: dict, bootstrap: str, tmp_path: Path) -> None:
    assert cli("run", str(WORDCOUNT), *app["options"], "--reducers", "2")[0] == 0
    code, err = cli("run", str(WORDCOUNT), *app["options"], "--reducers", "3", "--output", str(tmp_path / "o"))
    assert code == 9 and err.count("\n") == 1 and f"mrkafka app reset {app['name']}" in err, err
    code, err = cli("app", "reset", app["name"], "--bootstrap-servers", bootstrap)
    assert code == 0 and "-repartition" in err and "-changelog" in err and f"group {app['name']}" in err, err
    assert not [t for t in admin.list_topics(bootstrap) if t.startswith(f"{app['name']}-") and "-output" not in t]
    # The reset application starts again from the input's beginning: counts are not doubled.
    code, err = cli("run", str(WORDCOUNT), *app["options"], "--reducers", "3", "--output", str(tmp_path / "o"))
    assert code == 0, err
    assert counts(tmp_path / "o") == dict(oracle_wordcount(app["data"]))


def test_debug_shows_what_the_stream_workers_do(app: dict, tmp_path: Path) -> None:
    # Without --debug a worker is silent (what a user must know reaches them as errors); with it,
    # the run's output shows each worker's sessions and its Kafka client.
    args = [
        sys.executable,
        "-m",
        "mrkafka.cli",
        "run",
        str(WORDCOUNT),
        *app["options"],
        "--debug",
        "--output",
        str(tmp_path / "o"),
    ]
    run = subprocess.run(
        args, capture_output=True, text=True, timeout=300, env={**os.environ, "RAY_ADDRESS": "", "MRKAFKA_DEBUG": ""}
    )
    assert run.returncode == 0, run.stderr[-3000:]
    logged = run.stdout + run.stderr
    assert re.search(r"\(MapWorker pid=\d+\).* mrkafka\.librdkafka DEBUG: ", logged), logged[-3000:]
    assert re.search(r"\(ReduceWorker pid=\d+\).* mrkafka\.librdkafka DEBUG: ", logged), logged[-3000:]
    assert counts(tmp_path / "o") == oracle_wordcount(app["data"])


def test_input_topic_equal_to_output_topic_is_refused(app: dict) -> None:
    code, err = cli("run", str(WORDCOUNT), *app["options"], "--output-topic", app["topic"])
    assert code == 2 and err.count("\n") == 1 and "also the output topic" in err


def test_kafka_internal_topics_are_not_deleted(bootstrap: str) -> None:
    code, err = cli("topic", "delete", "__consumer_offsets", "--bootstrap-servers", bootstrap)
    assert code == 2 and err.count("\n") == 1 and "--force" in err
    assert "__consumer_offsets" in admin.list_topics(bootstrap, internal=True)


def test_a_running_applications_topics_are_not_deleted_and_a_killed_one_is_reset(
    bootstrap: str, topic_name: str, tmp_path: Path
) -> None:
    admin.create_topic(bootstrap, topic_name, partitions=1)
    name = f"{topic_name}-app"
    extra = ["--input-topic", topic_name, "--output-topic", f"{topic_name}-out"]
    with StreamRun(bootstrap, name, tmp_path / "state", tmp_path / "run.log", *extra) as run:
        deadline = time.monotonic() + 120
        while retrying(admin.group_members, bootstrap, application.groups(name)) == 0:
            assert run.process.poll() is None and time.monotonic() < deadline, run.tail()
            time.sleep(0.3)
        code, err = cli("topic", "delete", f"{name}-repartition", "--bootstrap-servers", bootstrap)
        assert code == 2 and "is running" in err, err
        code, err = cli("app", "reset", name, "--bootstrap-servers", bootstrap)
        assert code == 2 and "is running" in err, err
        run.kill()  # its workers die without leaving their group: members until their session ends
    assert retrying(admin.group_members, bootstrap, application.groups(name)) > 0
    code, err = cli("app", "reset", name, "--bootstrap-servers", bootstrap)  # waits them out
    assert code == 0 and f"topic {name}-repartition" in err, err


def test_a_starting_application_is_not_reset_and_a_run_whose_topics_vanish_stops(
    bootstrap: str, topic_name: str, tmp_path: Path
) -> None:
    """A reset is refused from the run's first moment, before its workers join their groups;
    a run whose internal topic is deleted anyway (Kafka's own tool, from elsewhere) stops with
    one line."""
    admin.create_topic(bootstrap, topic_name, partitions=1)
    name, state = f"{topic_name}-app", tmp_path / "state"
    extra = ["--input-topic", topic_name, "--output-topic", f"{topic_name}-out"]
    with StreamRun(bootstrap, name, state, tmp_path / "run.log", *extra) as run:
        deadline = time.monotonic() + 120
        while not (state / name / "run.lock").exists():
            assert run.process.poll() is None and time.monotonic() < deadline, run.tail()
            time.sleep(0.05)
        code, err = cli("app", "reset", name, "--state-dir", str(state), "--bootstrap-servers", bootstrap)
        assert code == 2 and f"application {name} is running (process {run.process.pid} on" in err, err
        while retrying(admin.group_members, bootstrap, application.groups(name)) == 0:
            assert run.process.poll() is None and time.monotonic() < deadline, run.tail()
            time.sleep(0.3)
        delete = tool_command("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", bootstrap)
        subprocess.run([*delete, "--delete", "--topic", f"{name}-repartition"], check=True, capture_output=True)
        assert run.process.wait(timeout=120) == 9, run.tail()
        assert f"the internal topic {name}-repartition of application {name} was deleted while it ran" in run.tail()


INT_KEYS_JOB = """
from mrkafka import Job


class IntKeys(Job):
    name = "int_keys"

    def map(self, offset, line):
        key, _, value = line.partition(" ")
        yield int(key), int(value)

    def reduce(self, a, b):
        return a + b
"""


@pytest.mark.parametrize("state", ["memory", "rocksdb"])
def test_a_resumed_run_writes_what_batch_writes(
    ray_cluster, bootstrap: str, topic_name: str, tmp_path: Path, state: str
) -> None:
    job = tmp_path / "int_keys.py"
    job.write_text(INT_KEYS_JOB)
    admin.create_topic(bootstrap, topic_name, partitions=2)
    # The second run resumes with one new record (one reducer gets nothing new), the third with none.
    runs = [b"".join(b"%d 1\n" % (i % 9) for i in range(100)), b"3 5\n", b""]
    options = [
        "--stream",
        "--input-topic",
        topic_name,
        "--application-id",
        f"{topic_name}-app",
        "--until-end",
        "--bootstrap-servers",
        bootstrap,
        "--state",
        state,
        "--state-dir",
        str(tmp_path / "state"),
        "--format",
        "jsonl",
        "--commit-interval-ms",
        "200",
    ]
    for i, data in enumerate(runs):
        (tmp_path / f"in{i}.txt").write_bytes(data)
        if data:
            produce_lines(bootstrap, topic_name, str(tmp_path / f"in{i}.txt"), progress=False)
        code, err = cli("run", str(job), *options, "--output", str(tmp_path / f"S{i}"))
        assert code == 0, err
    code, err = cli(
        "run",
        str(job),
        "--input",
        str(tmp_path / "in0.txt"),
        "--input",
        str(tmp_path / "in1.txt"),
        "--output",
        str(tmp_path / "B"),
        "--format",
        "jsonl",
        "--runner",
        "inline",
    )
    assert code == 0, err
    for run, k in itertools.product(("S1", "S2"), range(2)):
        assert (tmp_path / run / f"part-r-{k:05d}").read_bytes() == (tmp_path / "B" / f"part-r-{k:05d}").read_bytes()


def test_producing_to_a_missing_topic_is_one_line_at_once(bootstrap: str, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_bytes(b"a\n")
    code, err = cli(
        "produce", "--topic", "no-such-topic", "--input", str(tmp_path / "in.txt"), "--bootstrap-servers", bootstrap
    )
    assert code == 9 and err == "mrkafka: error: topic no-such-topic does not exist\n"


SLOW_JOB = """
import time

from mrkafka import Job


class Slow(Job):
    def map(self, offset, line):
        time.sleep(0.05)
        yield line, 1

    def reduce(self, a, b):
        return a + b
"""


def _interrupt(args: list[str], started: Callable[[], bool], sig: int) -> tuple[int, str]:
    """Run ``mrkafka ARGS``, send ``sig`` once ``started()``, return its exit code and stderr."""
    # SIGINT handled as in a terminal's foreground command: Python leaves it ignored when it starts
    # ignored, as it does under a background job of a shell script (how a test run may be started).
    # SIGUSR1 prints the threads' stacks: what a run that does not stop was doing.
    command = (
        "import faulthandler, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "faulthandler.register(signal.SIGUSR1); sys.argv[0] = 'mrkafka'; from mrkafka.cli import main; main()"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", command, *args],
        stderr=subprocess.PIPE,
        start_new_session=True,
        env={**os.environ, "RAY_ADDRESS": ""},
    )
    try:
        deadline = time.monotonic() + 120
        while not started():
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read().decode()
            time.sleep(0.2)
        process.send_signal(sig)
        try:
            _, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGUSR1)
            time.sleep(2)
            os.killpg(process.pid, signal.SIGKILL)
            raise AssertionError(
                f"still running 60 s after {signal.Signals(sig).name}:\n" + process.communicate()[1].decode()
            ) from None
        return process.returncode, err.decode()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # and what its Ray left, by process group
        process.wait()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_bounded_run_says_no_output_was_written(
    bootstrap: str, topic_name: str, tmp_path: Path, sig: int
) -> None:
    (tmp_path / "slow.py").write_text(SLOW_JOB)
    admin.create_topic(bootstrap, topic_name, partitions=2)
    (tmp_path / "in.txt").write_bytes(b"".join(b"line %d\n" % i for i in range(5000)))  # 250 s of map
    produce_lines(bootstrap, topic_name, str(tmp_path / "in.txt"), progress=False)
    name = f"{topic_name}-app"
    args = [
        "run",
        str(tmp_path / "slow.py"),
        "--stream",
        "--input-topic",
        topic_name,
        "--application-id",
        name,
        "--bootstrap-servers",
        bootstrap,
        "--until-end",
        "--output",
        str(tmp_path / "out"),
    ]
    code, err = _interrupt(args, lambda: retrying(admin.group_members, bootstrap, application.groups(name)) > 0, sig)
    assert code == 130 and "no output was written" in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_an_interrupted_batch_run_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(SLOW_JOB)
    (tmp_path / "in.txt").write_bytes(b"".join(b"line %d\n" % i for i in range(5000)))
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
    ]
    code, err = _interrupt(args, lambda: (out / "_temporary").exists(), signal.SIGTERM)
    assert code == 130 and err.strip().endswith("no output was written (" + str(out) + " holds what it held before)")
    assert not out.exists()


def test_a_line_too_large_for_a_record_writes_nothing(bootstrap: str, topic_name: str, tmp_path: Path) -> None:
    admin.create_topic(bootstrap, topic_name)
    (tmp_path / "in.txt").write_bytes(b"first\n" + b"x" * (2 << 20) + b"\nlast\n")
    code, err = cli(
        "produce", "--topic", topic_name, "--input", str(tmp_path / "in.txt"), "--bootstrap-servers", bootstrap
    )
    assert code == 2 and err.count("\n") == 1 and "line 2 is 2,097,152 bytes" in err and "nothing was written" in err
    assert admin.topic_offsets(bootstrap, topic_name)[1] == {0: 0}
    # A topic made for large records takes it.
    admin.alter_configs(bootstrap, topic_name, {"max.message.bytes": str(4 << 20)})
    code, err = cli(
        "produce", "--topic", topic_name, "--input", str(tmp_path / "in.txt"), "--bootstrap-servers", bootstrap
    )
    assert code == 0 and admin.topic_offsets(bootstrap, topic_name)[1] == {0: 3}, err


def test_consuming_text_as_json_says_what_is_not_json(bootstrap: str, topic_name: str, tmp_path: Path) -> None:
    admin.create_topic(bootstrap, topic_name)
    (tmp_path / "in.txt").write_bytes(b'{"a": 1}\nplain text\n')
    produce_lines(bootstrap, topic_name, str(tmp_path / "in.txt"), progress=False)
    result = CliRunner().invoke(
        main,
        [
            "consume",
            "--topic",
            topic_name,
            "--from-beginning",
            "--max-messages",
            "2",
            "--value-format",
            "json",
            "--bootstrap-servers",
            bootstrap,
        ],
    )
    assert result.exit_code == 0 and result.stdout == '{"a": 1}\n<not JSON: plain text>\n', result.stderr


# Part files and topics write values with one JSON encoder (a set as a sorted list, in both);
# a complex number is a value neither can hold.
COMPLEX_JOB = """
from mrkafka import Job


class Complex(Job):  # values keyed by tuples: carried between map and reduce, but not JSON
    def map(self, offset, line):
        yield line.split()[0], {(len(line), 1): 1}

    def reduce(self, a, b):
        return {k: a.get(k, 0) + b.get(k, 0) for k in a.keys() | b.keys()}
"""


def test_a_value_the_output_serde_cannot_hold_stops_the_run_naming_the_key(app: dict, tmp_path: Path) -> None:
    (tmp_path / "complex.py").write_text(COMPLEX_JOB)
    code, err = cli("run", str(tmp_path / "complex.py"), *app["options"], "--task-timeout", "600")
    assert code == 5 and err.count("\n") == 1 and "the output serde raised TypeError" in err and "key '" in err, err


def test_on_error_skip_goes_past_a_record_the_map_raises_on(
    ray_cluster, bootstrap: str, topic_name: str, tmp_path: Path
) -> None:
    job = write_job(tmp_path, PICKY_JOB)
    admin.create_topic(bootstrap, topic_name, partitions=1)
    (tmp_path / "in.txt").write_bytes(b"a\nb\nbad\na\n")
    produce_lines(bootstrap, topic_name, str(tmp_path / "in.txt"), progress=False)
    options = [
        "--stream",
        "--input-topic",
        topic_name,
        "--application-id",
        f"{topic_name}-app",
        "--until-end",
        "--bootstrap-servers",
        bootstrap,
        "--state-dir",
        str(tmp_path / "state"),
    ]
    code, err = cli("run", str(job), *options, "--output", str(tmp_path / "failed"))
    assert code == 5 and err.count("\n") == 1, err
    assert f"map raised ValueError: no bad lines (topic {topic_name} partition 0 offset 2)" in err
    code, err = cli("run", str(job), *options, "--on-error", "skip", "--output", str(tmp_path / "skipped"))
    assert code == 0, err
    assert read_parts(tmp_path / "skipped") == {b"a": b"2", b"b": b"1"}
    assert "bad_records=1" in err


def test_an_unbounded_run_on_a_terminal_prints_its_status(bootstrap: str, topic_name: str, tmp_path: Path) -> None:
    import pty

    admin.create_topic(bootstrap, topic_name, partitions=1)
    (tmp_path / "in.txt").write_bytes(b"a b c\n" * 1000)
    produce_lines(bootstrap, topic_name, str(tmp_path / "in.txt"), progress=False)
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mrkafka.cli",
            "run",
            str(WORDCOUNT),
            "--stream",
            "--input-topic",
            topic_name,
            "--application-id",
            f"{topic_name}-app",
            "--bootstrap-servers",
            bootstrap,
            "--commit-interval-ms",
            "200",
        ],
        stderr=terminal,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "RAY_ADDRESS": ""},
    )
    os.close(terminal)
    seen = b""
    try:
        deadline = time.monotonic() + 120
        stopping = False
        while process.poll() is None and time.monotonic() < deadline:  # read all it writes, until it ends
            if select.select([controller], [], [], 1)[0]:
                with contextlib.suppress(OSError):  # EIO once the child closed the terminal
                    seen += os.read(controller, 65536)
            if b"1,000 records committed" in seen and not stopping:
                process.send_signal(signal.SIGTERM)
                stopping = True
        assert process.wait(timeout=60) == 0, seen[-2000:]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        os.close(controller)
    assert f"{topic_name}-app: 1,000 records committed".encode() in seen and b", lag 0" in seen, seen[-2000:]


def test_sigterm_to_the_whole_process_group_stops_cleanly(bootstrap: str, topic_name: str, tmp_path: Path) -> None:
    # What a terminal's job control or a service manager sends: every process of the run, Ray's too.
    admin.create_topic(bootstrap, topic_name, partitions=2)
    (tmp_path / "in.txt").write_bytes(b"a b c\n" * 1000)
    produce_lines(bootstrap, topic_name, str(tmp_path / "in.txt"), progress=False)
    name = f"{topic_name}-app"
    extra = ["--input-topic", topic_name, "--output-topic", f"{topic_name}-out"]
    with StreamRun(bootstrap, name, tmp_path / "state", tmp_path / "run.log", *extra) as run:
        deadline = time.monotonic() + 120
        while sum(retrying(admin.committed_offsets, bootstrap, name, topic_name).values()) < 1000:
            assert run.process.poll() is None and time.monotonic() < deadline, run.tail()
            time.sleep(0.3)
        os.killpg(run.pid, signal.SIGTERM)
        assert run.process.wait(timeout=120) == 0, run.tail()
    log = run.tail(20_000)
    # The signal reaches Ray's own processes too, and their GCS may stop serving before the
    # workers answer the driver's stop: the run still ends at once, exit 0, saying the workers'
    # last values are missing (it once waited for them until Ray gave up on its GCS a minute
    # later, and exited 1). Either way what the workers committed stands.
    degraded = "the stop reached Ray's own processes too" in log
    assert "records in 1,000" in log or degraded, log
    assert "Failed to connect to GCS" not in log and "Traceback" not in log, log
    assert sum(retrying(admin.committed_offsets, bootstrap, name, topic_name).values()) == 1000


def test_a_taken_metrics_port_stops_a_stream_run_before_ray_starts(
    bootstrap: str, topic_name: str, tmp_path: Path
) -> None:
    admin.create_topic(bootstrap, topic_name, partitions=1)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # No Ray answers at --ray-address: a run that started Ray before taking its port would say so.
        args = ["run", str(WORDCOUNT), "--stream", "--input-topic", topic_name, "--state-dir", str(tmp_path / "s")]
        args += ["--metrics-port", str(port), "--ray-address", "127.0.0.1:1", "--bootstrap-servers", bootstrap]
        code, err = cli(*args)
    assert code == 6 and err.count("\n") == 1 and f"--metrics-port {port}: Address already in use" in err, err
