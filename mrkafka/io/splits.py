"""Input splits and the record reader, with Hadoop's ``LineRecordReader`` semantics.

A split is a byte range of one file. A line belongs to the split in which its first byte
lies, and a line starting exactly at a boundary to the earlier split: a split that does
not start at offset 0 skips through the first ``\\n`` at or after its start, and every split
reads past its end through the first ``\\n`` at or after its end. So each line is read
exactly once whatever boundary it crosses. Lines end at ``\\n``; one ``\\r`` before it is
stripped. ``.gz`` files cannot be cut and are read whole.

Files smaller than a block are combined: one split reads several of them whole, as Hadoop's
``CombineFileInputFormat`` does, each with the semantics above (a file's last line ends with
the file). How many go together follows Spark's rule for file partitions: up to a block, and
no more than an equal share of the small files' bytes per mapper, so small files alone still
keep every mapper busy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pyarrow as pa

from mrkafka.core import kernels
from mrkafka.errors import BadInputError
from mrkafka.io import fs

__all__ = [
    "MAX_SPLITS",
    "FileRange",
    "Split",
    "expand_inputs",
    "iter_lines",
    "lines_array",
    "parse_size",
    "pieces",
    "plan_splits",
    "read_range",
    "read_split",
]

# Hadoop's FileInputFormat.SPLIT_SLOP: a last piece up to 10% of a block joins the split before.
SPLIT_SLOP = 1.1
#: A plan of more splits is refused (see ``plan_splits``).
MAX_SPLITS = 100_000
_READ_CHUNK = 1 << 20
PIECE_BYTES = 16 * 1024 * 1024

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1000**4,
    "tib": 1024**4,
}


def parse_size(text: str) -> int:
    """``"64KiB"`` -> 65536, ``"128MB"`` -> 128000000, ``"128m"`` -> 134217728 (Hadoop's style)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match and _UNITS.get(match.group(2).lower())
    if not match or unit is None:
        raise BadInputError(f"not a size: {text!r} (try 64KiB, 128MB or 1GiB)")
    size = int(float(match.group(1)) * unit)
    if size <= 0:
        raise BadInputError(f"size must be positive: {text!r}")
    return size


@dataclass(frozen=True)
class FileRange:
    """Bytes ``[start, start + length)`` of ``path`` (of a ``.gz`` file: all of it)."""

    path: str
    start: int
    length: int

    @property
    def compressed(self) -> bool:
        return self.path.endswith(".gz")

    def __str__(self) -> str:
        return f"{self.path}:{self.start}+{self.length}"


@dataclass(frozen=True)
class Split:
    """What one map task reads: a range of one file, or several small files whole (Hadoop's
    ``CombineFileSplit``); ``index`` orders the splits of a run."""

    index: int
    ranges: tuple[FileRange, ...]

    @property
    def length(self) -> int:
        return sum(r.length for r in self.ranges)

    @property
    def path(self) -> str:
        """The file it reads, as a message names it."""
        first = self.ranges[0].path
        return first if len(self.ranges) == 1 else f"{first} and {len(self.ranges) - 1} more files"


def _hidden(name: str) -> bool:
    return name.startswith(("_", "."))


def expand_inputs(inputs: Iterable[str]) -> list[str]:
    """Files named by paths, directories and globs, in a stable order.

    A directory contributes every file below it, recursively (as Hadoop's
    ``input.dir.recursive``), skipping names that start with ``_`` or ``.`` at any depth."""
    files: list[str] = []
    for given in map(fs.location, inputs):
        matches = fs.glob(given) if fs.has_magic(given) else [given]
        if not matches:
            raise BadInputError(f"no input matches {given}")
        for path in matches:
            if fs.is_dir(path):
                files.extend(fs.files_below(path, skip=_hidden))
            elif fs.is_file(path):
                files.append(path)
            else:
                raise BadInputError(f"input not found: {path}")
    return files


def plan_splits(files: Iterable[str], block_size: int, mappers: int = 1, max_splits: int = MAX_SPLITS) -> list[Split]:
    """Cut each file of a block or more into splits of ``block_size`` bytes (the last up to 1.1
    blocks), and combine the smaller ones, in their order, into splits of up to
    ``min(block_size, their bytes / mappers)`` (a ``.gz`` file counts as small unless it is a
    block or more); refuse a plan of more than ``max_splits``: each costs a task, and so many
    come only from a tiny block."""
    files = list(files)
    sizes = [fs.size(path) for path in files]
    if sum(sizes) // block_size > max_splits:
        raise BadInputError(
            f"--block-size {block_size} would cut the input into about {sum(sizes) // block_size:,} splits (at most "
            f"{max_splits:,}): use a larger block size"
        )
    small_bytes = sum(size for size in sizes if size < block_size)
    combined = max(1, min(block_size, -(-small_bytes // mappers)))
    splits: list[Split] = []
    small: list[FileRange] = []  # small files waiting to fill a split, and their bytes
    small_total = 0

    def add(*ranges: FileRange) -> None:
        splits.append(Split(len(splits), ranges))

    for path, size in zip(files, sizes):
        if small and (size >= block_size or small_total + size > combined):
            add(*small)  # a big file comes next, or this one would overfill the split
            small, small_total = [], 0
        if not size:
            continue
        if size < block_size:
            small.append(FileRange(path, 0, size))
            small_total += size
        elif path.endswith(".gz"):
            add(FileRange(path, 0, size))
        else:
            start = 0
            while size - start > block_size * SPLIT_SLOP:
                add(FileRange(path, start, block_size))
                start += block_size
            add(FileRange(path, start, size - start))
    if small:
        add(*small)
    return splits


def read_split(split: Split) -> tuple[int, bytearray]:
    """The whole lines that belong to ``split``, endings included, and the offset of the
    first in its file; a combined split's files one after the other, each ending in ``\\n``
    (offset 0: offsets within a file are ``read_range``'s)."""
    if len(split.ranges) == 1:
        return read_range(split.ranges[0])
    joined = bytearray()
    for r in split.ranges:
        joined += read_range(r)[1]
        if joined and not joined.endswith(b"\n"):
            joined += b"\n"  # the file's last line ends with it
    return 0, joined


def read_range(file_range: FileRange) -> tuple[int, bytearray]:
    """The whole lines that belong to ``file_range``, endings included, and the offset of the first."""
    if file_range.compressed:
        with fs.open_input(file_range.path) as raw:
            try:  # Arrow's inflate (concatenated members too), a quarter faster than Python's gzip
                return 0, bytearray(pa.CompressedInputStream(raw, "gzip").read())
            except OSError as exc:  # not gzip, or truncated
                raise BadInputError(f"{file_range.path} is not a readable gzip file: {exc}") from exc
    block = bytearray(file_range.length)
    with fs.open_input(file_range.path) as f:
        f.seek(file_range.start)
        if f.readinto(block) < file_range.length:
            raise BadInputError(f"{file_range.path} shrank while it was read")
        offset = file_range.start
        if file_range.start:
            first_nl = block.find(b"\n")
            if first_nl == -1:
                return file_range.start + file_range.length, bytearray()  # no line starts here: not ours
            del block[: first_nl + 1]  # O(1) at the front of a bytearray
            offset += first_nl + 1
        # Read on through the first \n at or after the end (Hadoop reads while pos <= end).
        while chunk := f.read(_READ_CHUNK):
            nl = chunk.find(b"\n")
            block += chunk if nl == -1 else chunk[: nl + 1]
            if nl != -1:
                break
    return offset, block


def pieces(block: bytes | bytearray, max_bytes: int = PIECE_BYTES) -> Iterator[tuple[int, memoryview]]:
    """Cut a line-aligned block into line-aligned pieces of about ``max_bytes``, with their offsets.

    Arrow binary arrays hold at most 2 GiB, and the vectorized map's intermediate arrays
    grow with the piece, so a map task works through a block one piece at a time. The
    pieces are views: nothing is copied.
    """
    view = memoryview(block)
    pos = 0
    while pos < len(block):
        stop = block.find(b"\n", pos + max_bytes - 1)
        stop = len(block) if stop == -1 else stop + 1
        yield pos, view[pos:stop]
        pos = stop


def lines_array(piece: bytes | bytearray | memoryview) -> pa.Array:
    """The lines of a line-aligned piece as an Arrow binary array, line endings (``\n`` or
    ``\r\n``) removed."""
    return kernels.split_lines(piece)


def iter_lines(block: bytes | bytearray, base_offset: int = 0) -> Iterator[tuple[int, bytes]]:
    """``(byte offset in the file, line)`` for each line of a block starting at ``base_offset``."""
    block = bytes(block)
    pos = 0
    end = len(block)
    while pos < end:
        nl = block.find(b"\n", pos)
        stop = end if nl == -1 else nl
        line = block[pos:stop]
        if line.endswith(b"\r"):
            line = line[:-1]
        yield base_offset + pos, line
        pos = stop + 1
