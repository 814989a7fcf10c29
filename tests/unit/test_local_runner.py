"""The local runner: splits mapped in threads of one process, the inline runner's output."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest

from tests.helpers import PICKY_JOB, WORDCOUNT, cli, messy_corpus, oracle_wordcount, read_parts, real_text, write_job


@pytest.mark.parametrize("reducers", ["3", "0"])
def test_threads_give_the_inline_runners_parts_byte_for_byte(tmp_path: Path, reducers: str) -> None:
    data = messy_corpus(seed=5, lines=4000) + b"\n" + real_text(1 << 20)
    (tmp_path / "in.txt").write_bytes(data)
    outputs = {}
    for runner, extra in (("inline", []), ("local", ["--mappers", "3"])):
        outputs[runner] = tmp_path / runner
        code, err = cli(
            "run",
            str(WORDCOUNT),
            "--input",
            str(tmp_path / "in.txt"),
            "--output",
            str(outputs[runner]),
            "--runner",
            runner,
            "--block-size",
            "64KiB",
            "--reducers",
            reducers,
            *extra,
        )
        assert code == 0, err
    parts = sorted(p.name for p in outputs["inline"].glob("part-*"))
    assert len(parts) == (3 if reducers == "3" else len(list(outputs["local"].glob("part-m-*")))) > 1
    assert parts == sorted(p.name for p in outputs["local"].glob("part-*"))
    assert filecmp.cmpfiles(outputs["inline"], outputs["local"], parts, shallow=False)[0] == parts
    if reducers == "3":
        assert {k: int(v) for k, v in read_parts(outputs["local"]).items()} == dict(oracle_wordcount(data))


def test_a_map_that_fails_in_a_thread_is_one_line_and_leaves_no_output(tmp_path: Path) -> None:
    job = write_job(tmp_path, PICKY_JOB)
    (tmp_path / "in.txt").write_bytes(b"a b\n" * 20000 + b"bad\n" + b"c\n" * 20000)
    out = tmp_path / "out"
    code, err = cli(
        "run",
        str(job),
        "--input",
        str(tmp_path / "in.txt"),
        "--output",
        str(out),
        "--runner",
        "local",
        "--block-size",
        "16KiB",
    )
    assert code == 5 and err.count("\n") == 1 and "in.txt at byte 80000" in err, err
    assert not out.exists()


def test_ray_options_are_refused_with_the_local_runner(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_bytes(b"a\n")
    args = ["run", str(WORDCOUNT), "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "o")]
    code, err = cli(*args, "--runner", "local", "--ray-address", "auto")
    assert code == 2 and "--ray-address applies only with --runner ray" in err, err
    code, err = cli(*args, "--runner", "inline", "--mappers", "2")
    assert code == 2 and "--mappers applies only with --runner ray or local" in err, err


def test_the_default_runner_is_ray_only_where_a_ray_cluster_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from mrkafka.settings import BatchSettings

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    given = {"inputs": ["x"], "output": "o"}
    assert BatchSettings(**given).runner == "local"
    assert BatchSettings(**given, ray_address="10.0.0.1:6379").runner == "ray"
    assert BatchSettings(**given, runner="inline").runner == "inline"
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    assert BatchSettings(**given).runner == "ray"
    monkeypatch.setenv("RAY_ADDRESS", "")  # set but empty: no cluster named
    assert BatchSettings(**given).runner == "local"
