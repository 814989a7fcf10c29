from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mrkafka.core.counters import Counters
from mrkafka.core.partial import partial_from_pairs, sort_by_key
from mrkafka.errors import OutputExistsError, SetupError
from mrkafka.io.commit import OutputCommitter, part_name
from mrkafka.io.formats import write_part


def test_text_lines_sorted_by_key_bytes(tmp_path: Path) -> None:
    table = sort_by_key(partial_from_pairs([b"b", b"\xff", b"B", b"a"], [2, 3, 1, -4]))
    write_part(table, tmp_path / "p", "text")
    assert (tmp_path / "p").read_bytes() == b"B\t1\na\t-4\nb\t2\n\xff\t3\n"


def test_text_values_json_unless_text(tmp_path: Path) -> None:
    table = partial_from_pairs(["k", "l", "m", "n"], [[1, "é"], "plain", 1.5, {"a": None}])
    write_part(table, tmp_path / "p", "text")
    assert (tmp_path / "p").read_bytes() == 'k\t[1,"é"]\nl\tplain\nm\t1.5\nn\t{"a":null}\n'.encode()


def test_jsonl_and_parquet(tmp_path: Path) -> None:
    table = partial_from_pairs(["a", "b"], [1, 2])
    write_part(table, tmp_path / "j", "jsonl")
    assert [json.loads(x) for x in (tmp_path / "j").read_text().splitlines()] == [
        {"key": "a", "value": 1},
        {"key": "b", "value": 2},
    ]
    write_part(table, tmp_path / "q", "parquet")
    assert pq.read_table(tmp_path / "q").to_pydict() == {"key": ["a", "b"], "value": [1, 2]}


def _write(committer: OutputCommitter, index: int, text: str) -> None:
    """A reducer's part ``part-r-INDEX`` with its index, as a task writes it."""
    key, value = text.split()
    write_part(partial_from_pairs([key], [int(value)]), committer.task_path(part_name(index)), "text", index=True)


def test_commit_moves_parts_then_writes_success(tmp_path: Path) -> None:
    out = tmp_path / "out"
    committer = OutputCommitter(out)
    committer.setup(1, index=True)
    _write(committer, 0, "x 1")
    assert not (out / "_SUCCESS").exists()
    counters = Counters()
    counters.add(("G", "n"), 3)
    committer.commit(counters)
    assert sorted(p.name for p in out.iterdir()) == ["_COUNTERS.json", "_SUCCESS", "_index", "part-r-00000"]
    assert json.loads((out / "_COUNTERS.json").read_text()) == {"G": {"n": 3}}


def test_existing_output_is_refused_and_kept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "part-r-00000").write_text("old\n")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        OutputCommitter(out)
    committer = OutputCommitter(out, overwrite=True)
    committer.setup(2)
    committer.abort()  # a failed run with --overwrite keeps what was committed
    assert (out / "part-r-00000").read_text() == "old\n"
    committer = OutputCommitter(out, overwrite=True)
    committer.setup(1, map_only=True)
    Path(committer.task_path("part-m-00000")).write_text("new\n")
    committer.commit(Counters())
    assert sorted(p.name for p in out.iterdir()) == ["_COUNTERS.json", "_SUCCESS", "part-m-00000"]


def test_a_missing_part_is_never_committed(tmp_path: Path) -> None:
    """A part that a task wrote where the driver cannot see it (another node's disk): the
    commit stops before ``_SUCCESS``, and the previous output stays."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "part-r-00000").write_text("old\n")
    (out / "_SUCCESS").write_text("")
    committer = OutputCommitter(out, overwrite=True)
    committer.setup(2, index=True)
    _write(committer, 0, "a 1")
    _write(committer, 1, "b 1")
    (out / "_temporary" / "_index" / "part-r-00001.trie.arrow").unlink()
    with pytest.raises(SetupError, match=r"_index/part-r-00001\.trie\.arrow is missing .* shares"):
        committer.commit(Counters())
    committer.abort()
    assert sorted(p.name for p in out.iterdir()) == ["_SUCCESS", "part-r-00000"]


def test_abort_removes_what_the_run_created(tmp_path: Path) -> None:
    out = tmp_path / "out"
    committer = OutputCommitter(out)
    committer.setup(1)
    Path(committer.task_path("part-r-00000")).write_text("half")
    committer.abort()
    assert not out.exists()


def test_counters_add_up() -> None:
    a, b = Counters(), Counters()
    a.add(("G", "x"), 2)
    b.add(("G", "x"), 3)
    b.add(("H", "y"))
    a.update(b)
    assert a.as_dict() == {"G": {"x": 5}, "H": {"y": 1}}
    assert "\t\tx=5" in a.format()


@pytest.mark.parametrize("fmt", ["text", "jsonl", "parquet"])
def test_a_full_disk_is_one_clear_error(fmt: str) -> None:
    table = partial_from_pairs(["a", "b"], [1, 2])
    with pytest.raises(SetupError, match="cannot write /dev/full: No space left on device"):
        write_part(table, "/dev/full", fmt)


def test_every_format_the_command_line_offers_has_a_writer() -> None:
    from mrkafka.io.formats import WRITERS
    from mrkafka.settings import FORMATS

    assert list(FORMATS) == list(WRITERS)
