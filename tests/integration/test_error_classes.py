"""Every error class a run can end with, through the command line, on both runners and in
both modes: one line on stderr, the README's exit code, no traceback.

The cases are the smallest that reach each class where it is raised: in the driver, in a map
or reduce task (on the ray runner, in an actor), in a stream worker.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mrkafka.devtools.console import produce_lines
from mrkafka.kafka import admin
from tests.helpers import PICKY_JOB, WORDCOUNT, cli, free_ports, write_job

pytestmark = pytest.mark.integration

#: Per-record forms that raise where each method runs.
FAILING = """
from mrkafka import Job, StreamOptions
class Failing(Job):
    name = "failing"
    parameters = {"where": "map"}
    stream = StreamOptions(value_serde="long")
    def map(self, offset, line):
        if self.params["where"] == "map" and line == "bad":
            raise ValueError("no bad lines")
        yield line, 1
    def reduce(self, a, b):
        if self.params["where"] == "reduce":
            raise ValueError("no merging")
        return a + b
    def finish(self, key, value):
        if self.params["where"] == "finish":
            raise ValueError("no finishing")
        return value
"""

# name -> (exit code, what the line says, arguments after the job file); {placeholders} filled in
BATCH = {
    "bad-parameter": (3, "has no parameter 'nope'", ["-p", "nope=1"]),
    "broken-job": (3, "does not import", ["--job-file", "{broken}"]),
    "missing-input": (2, "input not found", ["--input", "{in}.missing"]),
    "output-exists": (4, "exists", ["--output", "{existing}"]),
    "map-raises": (5, "map raised ValueError: no bad lines", []),
    "reduce-raises": (5, "raised ValueError: no merging", ["-p", "where=reduce"]),
    "finish-raises": (5, "finish raised ValueError", ["-p", "where=finish"]),
}
STREAM = {
    "bad-parameter": (3, "has no parameter 'nope'", ["-p", "nope=1"]),
    "feeds-itself": (2, "is also the output topic", ["--output-topic", "{topic}"]),
    "missing-topic": (9, "does not exist", ["--input-topic", "{topic}-missing"]),
    "no-broker": (8, "no Kafka broker answers", ["--bootstrap-servers", "127.0.0.1:{free}", "--task-timeout", "1"]),
    "output-exists": (4, "exists", ["--output", "{existing}"]),
    "map-raises": (5, "map raised ValueError: no bad lines", []),
    "finish-raises": (5, "finish raised ValueError", ["-p", "where=finish"]),
}


def _args(defaults: dict[str, str], extra: list[str], values: dict[str, str]) -> list[str]:
    """The job file, then ``defaults`` (option -> value) that ``extra`` does not give, then ``extra``."""
    extra = [arg.format(**values) for arg in extra]
    given = dict(zip(extra[::2], extra[1::2]))
    job = given.pop("--job-file", values["job"])
    options = [arg for option, value in {**defaults, **given}.items() for arg in (option, value)]
    return [job, *options]


@pytest.fixture
def values(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "in.txt").write_text("a\nbad\na\nb\n")
    (tmp_path / "existing").mkdir()
    (tmp_path / "existing" / "part-r-00000").write_text("x\t1\n")
    return {
        "in": str(tmp_path / "in.txt"),
        "out": str(tmp_path / "out"),
        "existing": str(tmp_path / "existing"),
        "job": str(write_job(tmp_path, FAILING)),
        "broken": str(write_job(tmp_path, "not Python\n", "broken.py")),
        "free": str(free_ports(1)),
    }


def assert_one_line(code: int, err: str, expected_code: int, message: str) -> None:
    assert code == expected_code, err
    assert err.count("\n") == 1 and err.startswith("mrkafka: error: ") and "Traceback" not in err, err
    assert message in err, err


@pytest.mark.parametrize("case", sorted(BATCH))
def test_batch_errors(runner: str, values: dict[str, str], case: str) -> None:
    code, message, extra = BATCH[case]
    defaults = {"--input": values["in"], "--output": values["out"], "--runner": runner}
    assert_one_line(*cli("run", *_args(defaults, extra, values)), code, message)
    assert not Path(values["out"]).exists() and Path(values["existing"], "part-r-00000").read_text() == "x\t1\n"


def test_batch_setup_error_on_the_ray_runner(values: dict[str, str]) -> None:
    extra = ["--ray-address", "127.0.0.1:{free}"]
    code, err = cli("run", *_args({"--input": values["in"], "--output": values["out"]}, extra, values))
    assert_one_line(code, err, 6, "cannot reach Ray")


@pytest.fixture
def topic(ray_cluster, bootstrap: str, topic_name: str, values: dict[str, str]) -> str:
    admin.create_topic(bootstrap, topic_name, partitions=2)
    produce_lines(bootstrap, topic_name, values["in"], progress=False)
    return topic_name


def _stream(bootstrap: str, topic: str, tmp_path: Path, values: dict[str, str], extra: list[str]) -> tuple[int, str]:
    defaults = {
        "--input-topic": topic,
        "--application-id": f"{topic}-app",
        "--bootstrap-servers": bootstrap,
        "--state-dir": str(tmp_path / "state"),
        "--commit-interval-ms": "200",
    }
    return cli("run", *_args(defaults, extra, {**values, "topic": topic}), "--stream", "--until-end")


@pytest.mark.parametrize("case", sorted(STREAM))
def test_stream_errors(bootstrap: str, topic: str, values: dict[str, str], tmp_path: Path, case: str) -> None:
    code, message, extra = STREAM[case]
    assert_one_line(*_stream(bootstrap, topic, tmp_path, values, extra), code, message)
    assert Path(values["existing"], "part-r-00000").read_text() == "x\t1\n"


def test_stream_another_job_on_the_same_application(
    bootstrap: str, topic: str, values: dict[str, str], tmp_path: Path
) -> None:
    picky = str(write_job(tmp_path, PICKY_JOB, "picky.py"))
    code, err = _stream(bootstrap, topic, tmp_path, values, ["--job-file", picky, "--on-error", "skip"])
    assert code == 0, err
    code, err = _stream(bootstrap, topic, tmp_path, values, ["--job-file", str(WORDCOUNT)])
    assert_one_line(code, err, 3, f"application {topic}-app holds the state of")
