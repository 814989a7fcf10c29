from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mrkafka.errors import BadInputError
from mrkafka.io import fs
from mrkafka.io.splits import (
    expand_inputs,
    iter_lines,
    lines_array,
    parse_size,
    pieces,
    plan_splits,
    read_split,
)

TRICKY = b"ab\r\ncd\n\nlong line that crosses blocks\r\n\r\nx\xff\xfe\r\n\n\ny\r"


def expected_lines(data: bytes) -> list[bytes]:
    """The oracle: split on \\n, drop the empty piece after a final \\n, strip one \\r."""
    if not data:
        return []
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines.pop()
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def lines_by_splits(path: Path, block_size: int) -> tuple[list[bytes], list[tuple[int, bytes]]]:
    arrow, records = [], []
    for split in plan_splits([str(path)], block_size):
        offset, block = read_split(split)
        for _, piece in pieces(block, 3):
            arrow += lines_array(piece).to_pylist()
        records += list(iter_lines(block, offset))
    return arrow, records


@pytest.mark.parametrize("data", [TRICKY, TRICKY + b"\n", b"\n", b"only", b"a\nb\n", b"\r\n\r\n"])
def test_every_block_size_reads_each_line_once(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "in.txt"
    path.write_bytes(data)
    for block_size in range(1, len(data) + 2):
        arrow, records = lines_by_splits(path, block_size)
        assert arrow == expected_lines(data), block_size
        assert [line for _, line in records] == expected_lines(data), block_size


def test_offsets_are_byte_offsets_of_line_starts(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_bytes(TRICKY)
    _, records = lines_by_splits(path, 5)
    for offset, line in records:
        assert TRICKY[offset : offset + len(line)] == line
        assert offset == 0 or TRICKY[offset - 1 : offset] == b"\n"


def test_crlf_straddling_a_boundary(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_bytes(b"abc\r\ndef\r\n")
    # Boundary between \r (offset 3) and \n (offset 4).
    arrow, _ = lines_by_splits(path, 4)
    assert arrow == [b"abc", b"def"]


@settings(max_examples=300, deadline=None)
@given(
    data=st.lists(st.sampled_from([b"a", b"bb", b"\n", b"\r\n", b"\r", b" ", b"\xff"]), max_size=60).map(b"".join),
    block_size=st.integers(1, 40),
)
def test_splitting_never_loses_or_repeats_a_line(tmp_path_factory, data: bytes, block_size: int) -> None:
    path = tmp_path_factory.mktemp("h") / "in.txt"
    path.write_bytes(data)
    arrow, records = lines_by_splits(path, block_size)
    assert arrow == expected_lines(data)
    assert [line for _, line in records] == expected_lines(data)


def test_empty_file_has_no_splits(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    assert plan_splits([str(path)], 10) == []


def test_last_split_takes_the_slop(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_bytes(b"x" * 105)
    assert [s.length for s in plan_splits([str(path)], 100)] == [105]
    path.write_bytes(b"x" * 111)
    assert [s.length for s in plan_splits([str(path)], 100)] == [100, 11]


def test_gzip_is_one_split(tmp_path: Path) -> None:
    path = tmp_path / "in.txt.gz"
    path.write_bytes(gzip.compress(TRICKY))
    splits = plan_splits([str(path)], 4)
    assert len(splits) == 1
    _, block = read_split(splits[0])
    assert lines_array(block).to_pylist() == expected_lines(TRICKY)


def test_small_files_are_combined_up_to_a_share_of_their_bytes(tmp_path: Path) -> None:
    """Files under a block go together, in order, up to min(block, small bytes / mappers); a
    file of a block or more ends the split before it and is cut as ever."""
    sizes = {"a": 10, "b": 10, "c": 10, "big": 500, "d": 10, "e": 30, "empty": 0, "f": 10}
    files = []
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(b"x" * size)
        files.append(str(tmp_path / name))
    plan = plan_splits(files, 100, mappers=2)  # small bytes 80: splits of up to 40
    assert [[(Path(r.path).name, r.start, r.length) for r in split.ranges] for split in plan] == [
        [("a", 0, 10), ("b", 0, 10), ("c", 0, 10)],
        *([("big", start, 100)] for start in range(0, 500, 100)),
        [("d", 0, 10), ("e", 0, 30)],
        [("f", 0, 10)],
    ]
    assert [split.index for split in plan] == list(range(len(plan)))
    assert len(plan_splits(files, 100, mappers=1)) == 1 + 5 + 1  # up to 80: a-c, then d-f


def test_a_combined_split_reads_each_file_with_its_own_lines(tmp_path: Path) -> None:
    """A file's last line ends with the file, though it has no \\n: it never runs into the next."""
    contents = [TRICKY, b"no newline", b"", b"\r\n", gzip.compress(b"zipped\nlines"), TRICKY + b"\n"]
    files = []
    for i, data in enumerate(contents):
        path = tmp_path / (f"{i}.txt.gz" if data.startswith(b"\x1f\x8b") else f"{i}.txt")
        path.write_bytes(data)
        files.append(str(path))
    (split,) = plan_splits(files, 1 << 20)
    assert len(split.ranges) == 5  # the empty file is no part of it
    _, block = read_split(split)
    expected = [
        line for data in contents for line in expected_lines(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
    ]
    assert lines_array(block).to_pylist() == expected
    assert [line for _, line in iter_lines(block)] == expected


def test_expand_inputs(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    for name in ("b.txt", "a.txt", "_SUCCESS", ".hidden"):
        (tmp_path / "d" / name).write_text("x")
    (tmp_path / "c.log").write_text("x")
    assert expand_inputs([str(tmp_path / "d")]) == [str(tmp_path / "d" / n) for n in ("a.txt", "b.txt")]
    assert expand_inputs([str(tmp_path / "*.log")]) == [str(tmp_path / "c.log")]
    with pytest.raises(BadInputError, match="not found"):
        expand_inputs([str(tmp_path / "missing.txt")])
    with pytest.raises(BadInputError, match="no input matches"):
        expand_inputs([str(tmp_path / "*.csv")])


@pytest.mark.parametrize(
    "text,size",
    [("64KiB", 65536), ("128MB", 128_000_000), ("1GiB", 1 << 30), ("128m", 128 << 20), ("100", 100)],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "12 parsecs", "-1KiB", "0", "KiB"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(BadInputError):
        parse_size(text)


def test_a_file_uri_names_the_local_path_and_a_query_configures_its_file_system(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ["d/a.txt", "d/sub/b.txt", "d/_skip.txt", "d/sub/.hidden"]:
        (tmp_path / name).write_bytes(b"x\n")
    local = expand_inputs([str(tmp_path / "d")])
    assert local == [str(tmp_path / "d" / "a.txt"), str(tmp_path / "d" / "sub" / "b.txt")]
    assert expand_inputs([f"file://{tmp_path}/d"]) == local
    assert expand_inputs([f"file://{tmp_path}/d/*.txt"]) == expand_inputs([str(tmp_path / "d" / "*.txt")])
    # pyarrow's options in the query configure s3://bucket's file system and leave the path.
    assert fs.location("s3://bucket/in/?endpoint_override=127.0.0.1:9&scheme=http&region=eu-west-1") == "s3://bucket/in"
    assert fs.filesystems()["s3://bucket"].region == "eu-west-1"
    assert fs.join("s3://bucket/in", "_index", "part-r-00000") == "s3://bucket/in/_index/part-r-00000"
