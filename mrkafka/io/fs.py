"""The one seam between mrkafka and file systems: every file an engine reads or writes
(inputs, parts and their index, the commit's files, the output lock) goes through these calls.

They are made over ``pyarrow.fs`` (its ``LocalFileSystem`` today), so that another file system
pyarrow knows plugs in here without its callers changing. What only a local file system can
do is said where it is done: the output lock, ``fsync``, memory-mapping an index, globs, and
the walk below an input directory, which must not follow a linked directory.
"""

from __future__ import annotations

import fcntl
import glob as globbing
import os
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.fs as pafs

__all__ = [
    "Lock",
    "LockHolder",
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
    "sync",
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


def sync(path: PathLike) -> None:
    """Make a local file's content, or a directory's entries, durable (``fsync``): what a
    commit relies on before it renames a file, and after, for the directory."""
    fd = os.open(_path(path), os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LockHolder(NamedTuple):
    """The process that holds a ``Lock``, as it wrote itself into the file."""

    host: str
    pid: str
    doing: str

    def __str__(self) -> str:
        return f"process {self.pid} on {self.host}" if self.pid else "another process"


class Lock:
    """An exclusive ``flock`` on a local file, held until ``release`` or the holder's death
    (the kernel drops it then: a killed holder leaves a file, never a held lock).

    ``Lock.take(path, doing)`` creates ``path`` if need be, takes the lock without waiting
    and writes its holder into the file (host, pid, what it is doing); None if a live process
    holds it, which ``Lock.holder(path)`` then names. A holder that
    releases deletes the file first; a taker that locked a file deleted meanwhile (not the
    one at ``path`` any more) tries again, so two processes never both hold ``path``."""

    def __init__(self, path: str, fd: int) -> None:
        self.path, self._fd = path, fd

    @classmethod
    def take(cls, path: PathLike, doing: str = "") -> Lock | None:
        path = _path(path)
        owner = f"{socket.gethostname()} {os.getpid()} {doing}\n".encode()
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                    os.ftruncate(fd, 0)
                    os.write(fd, owner)
                    return cls(path, fd)
            except BlockingIOError:
                os.close(fd)
                return None
            except FileNotFoundError:
                pass
            os.close(fd)

    @staticmethod
    def holder(path: PathLike) -> LockHolder | None:
        """Who holds the lock on ``path`` (fields empty until it wrote them); None if nobody does."""
        try:
            fd = os.open(_path(path), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:  # none there, or a link
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None
        except BlockingIOError:
            fields = os.pread(fd, 4096, 0).decode(errors="replace").strip().split(maxsplit=2)
            return LockHolder(*fields, *[""] * (3 - len(fields)))
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._fd >= 0:
            os.unlink(self.path)
            os.close(self._fd)
            self._fd = -1


def memory_map(path: PathLike) -> pa.MemoryMappedFile:
    """A local file memory-mapped for reading (a part's index: pages are read as looked at)."""
    return pa.memory_map(_path(path))
