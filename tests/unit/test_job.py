from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mrkafka.errors import BadJobError
from mrkafka.job import load_job, parse_params
from tests.helpers import WORDCOUNT, write_job


def test_loads_wordcount() -> None:
    job = load_job(WORDCOUNT)()
    assert job.job_name() == "wordcount"
    assert list(job.map(0, b" I am  Mukesh\t")) == [(b"I", 1), (b"am", 1), (b"Mukesh", 1)]
    assert job.has_map_arrow() and job.has_reduce() and not job.has_finish()


def test_missing_file() -> None:
    with pytest.raises(BadJobError, match="not found"):
        load_job("no/such/job.py")


def test_broken_file(tmp_path: Path) -> None:
    with pytest.raises(BadJobError, match="does not import: SyntaxError"):
        load_job(write_job(tmp_path, "class Oops(:\n"))


def test_no_job_class(tmp_path: Path) -> None:
    with pytest.raises(BadJobError, match="no subclass of mrkafka.Job"):
        load_job(write_job(tmp_path, "x = 1\n"))


def test_several_job_classes_need_a_name(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        """
        from mrkafka import Job
        class A(Job):
            def reduce(self, a, b): return a + b
        class B(Job):
            def reduce(self, a, b): return a * b
        """,
    )
    with pytest.raises(BadJobError, match="several jobs"):
        load_job(path)
    assert load_job(path, "B").__name__ == "B"
    with pytest.raises(BadJobError, match="no Job class 'C'"):
        load_job(path, "C")


def test_unknown_aggregate(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        """
        from mrkafka import Job
        class A(Job):
            aggregate = "median"
        """,
    )
    with pytest.raises(BadJobError, match="median"):
        load_job(path)


def test_parameters_are_typed_by_their_defaults(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        """
        from mrkafka import Job
        class P(Job):
            parameters = {"lower": False, "top": 5, "pattern": None}
            def reduce(self, a, b): return a + b
        """,
    )
    job_cls = load_job(path)
    job = job_cls(parse_params(["lower=true", "top=3", "pattern=a=b"]))
    assert job.params == {"lower": True, "top": 3, "pattern": "a=b"}
    assert job_cls().params == {"lower": False, "top": 5, "pattern": None}
    with pytest.raises(BadJobError, match="no parameter 'nope'"):
        job_cls({"nope": "1"})
    with pytest.raises(BadJobError, match="expected int"):
        job_cls({"top": "many"})
    with pytest.raises(BadJobError, match="name=value"):
        parse_params(["lower"])


def test_importing_job_does_not_import_ray_or_a_kafka_client() -> None:
    code = "import sys, mrkafka.job; print(sorted(m for m in ('ray', 'confluent_kafka') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_engines_are_siblings_that_never_import_each_other() -> None:
    code = (
        "import sys, mrkafka.stream, mrkafka.stream.workers; stream = 'mrkafka.batch' in sys.modules; "
        "[sys.modules.pop(m) for m in list(sys.modules) if m.startswith('mrkafka.stream')]; "
        "import mrkafka.batch, mrkafka.batch.ray_runner, mrkafka.batch.inline; "
        "print(stream, any(m.startswith('mrkafka.stream') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_a_stream_option_declared_beside_the_methods_is_refused_not_ignored(tmp_path: Path) -> None:
    job = tmp_path / "old.py"
    job.write_text('from mrkafka import Job\n\n\nclass Old(Job):\n    aggregate = "sum"\n    value_serde = "long"\n')
    with pytest.raises(
        BadJobError, match=r"Old\.value_serde: declare it as stream = StreamOptions\(value_serde=\.\.\.\)"
    ):
        load_job(job)
