"""A record whose map kills the worker's process (here: the job SIGKILLs itself, as a crash
or the kernel's memory killer would): the run neither restarts the worker forever nor loses
a record. It stops with one line naming the record, or under ``--on-error skip`` skips it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mrkafka.devtools.console import produce_lines
from mrkafka.errors import JobFailedError
from mrkafka.job import JobSpec, load_job
from mrkafka.kafka import admin
from mrkafka.settings import StreamSettings
from mrkafka.stream import run_stream
from tests.helpers import messy_corpus, oracle_wordcount, read_parts, write_job

pytestmark = pytest.mark.integration

POISONED_JOB = """
import os
import signal

from mrkafka import Job


class Poisoned(Job):
    name = "poisoned"
    input_type = bytes

    def map(self, offset, line):
        if line == b"poison":
            os.kill(os.getpid(), signal.SIGKILL)
        for word in line.split():
            yield word, 1

    def reduce(self, a, b):
        return a + b
"""


def test_a_record_that_kills_its_worker_is_named_or_skipped(
    ray_cluster, bootstrap: str, topic_name: str, tmp_path: Path
) -> None:
    lines = messy_corpus(seed=51, lines=600).splitlines()
    poison_at = 337
    data = b"\n".join(lines[:poison_at] + [b"poison"] + lines[poison_at:]) + b"\n"
    (tmp_path / "in.txt").write_bytes(data)
    admin.create_topic(bootstrap, topic_name, partitions=1)
    produce_lines(bootstrap, topic_name, str(tmp_path / "in.txt"), progress=False)
    job = load_job(write_job(tmp_path, POISONED_JOB, "poisoned.py"))
    env = {"bootstrap": bootstrap, "input_topic": topic_name, "application_id": f"{topic_name}-app"}

    def run(state: str, on_error: str = "fail"):
        settings = StreamSettings(
            **env, state_dir=str(tmp_path / state), until_end=True, reducers=1, output=tmp_path / f"out-{state}"
        )
        return run_stream(JobSpec(job, on_error=on_error), settings)

    where = f"topic {topic_name} partition 0 offset {poison_at}"
    with pytest.raises(JobFailedError, match=f"^the worker's process died twice mapping the record at {where},"):
        run("a")
    assert not (tmp_path / "out-a").exists()

    report = run("b", on_error="skip")  # another state directory: the record kills two processes again
    counts = {k: int(v) for k, v in read_parts(tmp_path / "out-b").items()}
    assert counts == dict(oracle_wordcount(b"\n".join(lines)))
    assert report.counters.get(("poisoned", "bad_records")) == 1
