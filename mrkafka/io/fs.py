"""The one seam between mrkafka and file systems: every file an engine reads or writes
(inputs, parts and their index, the commit's files, the output lock) goes through these calls.

They are made over ``pyarrow.fs`` (its ``LocalFileSystem`` today), so that another file system
pyarrow knows plugs in here without its callers changing. What only a local file system can
do is said where it is done: an exclusive create for the output lock, memory-mapping an index,
globs, and the walk below an input directory, which must not follow a linked directory.
"""

from __future__ import annotations

import glob as globbing
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

__all__ = [
    "create_exclusive",
    "reason",
    "exists",
    "files_below",
    "glob",
    "is_dir",
    "is_file",
    "list_dir",
    "makedirs",
    "memory_map",
    "open_input",
    "open_output",
    "read_bytes",
    "read_text",
    "remove",
    "rename",
    "size",
    "write_bytes",
]

PathLike = str | Path
_LOCAL = pafs.LocalFileSystem()


def reason(exc: OSError) -> str:
    """Why a file operation failed, in a few words (``No space left on device``), from an
    ``OSError`` of Python's or of pyarrow's (which names the errno only in its message)."""
    found = re.search(r"\[errno (\d+)\]", str(exc))
    if found:
        return os.strerror(int(found.group(1)))
    return exc.strerror or str(exc)


def _path(path: PathLike) -> str:
    return os.path.abspath(os.fspath(path))


def _info(path: PathLike) -> pafs.FileInfo:
    return _LOCAL.get_file_info(_path(path))


def exists(path: PathLike) -> bool:
    return _info(path).type != pafs.FileType.NotFound


def is_dir(path: PathLike) -> bool:
    return _info(path).type == pafs.FileType.Directory


def is_file(path: PathLike) -> bool:
    return _info(path).type == pafs.FileType.File


def size(path: PathLike) -> int:
    """The size of a file in bytes; ``FileNotFoundError`` if there is none."""
    info = _info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"no such file: {path}")
    return info.size


def list_dir(path: PathLike) -> list[str]:
    """The names in a directory, sorted."""
    return sorted(info.base_name for info in _LOCAL.get_file_info(pafs.FileSelector(_path(path))))


def glob(pattern: str) -> list[str]:
    """The paths a shell glob matches, sorted (local files)."""
    return sorted(globbing.glob(pattern))


def has_magic(pattern: str) -> bool:
    return globbing.has_magic(pattern)


def files_below(directory: PathLike, skip: Callable[[str], bool]) -> Iterator[str]:
    """Every file below ``directory``, recursively and in name order, except those whose name, or
    a directory's on the way, ``skip`` says to leave out. A linked directory is not entered
    (it could loop)."""
    for name in list_dir(directory):
        if skip(name):
            continue
        entry = os.path.join(directory, name)
        if os.path.isdir(entry) and not os.path.islink(entry):
            yield from files_below(entry, skip)
        elif is_file(entry):
            yield entry


def open_input(path: PathLike) -> Any:
    """A file to read, with ``seek``, ``read`` and ``readinto``."""
    return _LOCAL.open_input_file(_path(path))


def open_output(path: PathLike) -> Any:
    """A new file to write (an existing one is replaced), with ``write`` and ``tell``."""
    return _LOCAL.open_output_stream(_path(path))


def read_bytes(path: PathLike) -> bytes:
    with open_input(path) as f:
        return f.read()


def read_text(path: PathLike) -> str:
    return read_bytes(path).decode()


def write_bytes(path: PathLike, data: bytes) -> None:
    with open_output(path) as f:
        f.write(data)


def makedirs(path: PathLike) -> None:
    """A directory and those above it (nothing happens where they exist)."""
    _LOCAL.create_dir(_path(path), recursive=True)


def rename(source: PathLike, target: PathLike) -> None:
    """Move ``source`` to ``target``, replacing a file there."""
    _LOCAL.move(_path(source), _path(target))


def remove(path: PathLike, missing_ok: bool = False) -> None:
    """Delete a file, or a directory with everything in it."""
    info = _info(path)
    if info.type == pafs.FileType.Directory:
        _LOCAL.delete_dir(_path(path))
    elif info.type != pafs.FileType.NotFound:
        _LOCAL.delete_file(_path(path))
    elif not missing_ok:
        raise FileNotFoundError(f"no such file: {path}")


def create_exclusive(path: PathLike, data: bytes) -> bool:
    """Create ``path`` holding ``data``, unless it exists: whether it was created (local files:
    an exclusive create is what the output lock needs)."""
    try:
        fd = os.open(_path(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return True


def memory_map(path: PathLike) -> pa.MemoryMappedFile:
    """A local file memory-mapped for reading (a part's index: pages are read as looked at)."""
    return pa.memory_map(_path(path))
