"""The one seam between mrkafka and file systems: every file an engine reads or writes
(inputs, parts and their index, the commit's files, the output lock) goes through these calls.

They are made over ``pyarrow.fs``. A path is a string: a local path, or a URI of any file
system pyarrow opens by URI (``s3://bucket/key``, ``gs://bucket/key``, ``hdfs://host:port/path``;
``file:///path`` is a local path). ``location`` takes a path as a user gives it: a URI's query
(pyarrow's options, ``?endpoint_override=127.0.0.1:9000&scheme=http``) configures the file
system of its scheme and authority and leaves the path, and for ``s3://`` without an endpoint
in the query, ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (which boto3 and the AWS CLI
read, pyarrow does not) gives it. Credentials come from the file system's own chain (for S3:
the environment, ``~/.aws``, an instance role). A process that did not see the URI (a Ray
worker) gets its file systems from ``filesystems()``/``use()``, or opens the scheme's default.

Object storage has no directories to rename and no locks; what only a local file system can do
is said where it is done: the output lock, ``fsync``, memory-mapping an index, and the walk
below an input directory, which must not follow a linked directory.
"""

from __future__ import annotations

import fcntl
import fnmatch
import glob as globbing
import os
import posixpath
import re
import socket
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.fs as pafs

from mrkafka.errors import BadInputError

__all__ = [
    "Lock",
    "LockHolder",
    "reason",
    "exists",
    "files_below",
    "filesystems",
    "glob",
    "is_dir",
    "is_file",
    "is_local",
    "join",
    "list_dir",
    "location",
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
    "use",
    "write_bytes",
]

PathLike = str | Path
_LOCAL = pafs.LocalFileSystem()
#: The file systems of URIs this process has seen, by ``scheme://authority``.
_OPENED: dict[str, pafs.FileSystem] = {}
# Schemes whose pyarrow path starts with the URI's authority (the bucket).
_BUCKETS = ("s3", "gs", "gcs")


def reason(exc: OSError) -> str:
    """Why a file operation failed, in a few words (``No space left on device``), from an
    ``OSError`` of Python's or of pyarrow's (which names the errno only in its message)."""
    found = re.search(r"\[errno (\d+)\]", str(exc))
    if found:
        return os.strerror(int(found.group(1)))
    return exc.strerror or str(exc)


def location(given: PathLike) -> str:
    """A path as the calls below take it, from one a user gave: a local path as it is, a
    ``file://`` URI as its local path, another URI without its query, which configures the
    file system of the URI's scheme and authority (see the module docstring)."""
    given = os.fspath(given)
    if is_local(given):
        return given
    url = urllib.parse.urlsplit(given)
    if url.scheme == "file":
        return urllib.parse.unquote(url.path)
    root = f"{url.scheme}://{url.netloc}"
    options = urllib.parse.parse_qs(url.query)
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if url.scheme == "s3" and endpoint and "endpoint_override" not in options:
        endpoint_url = urllib.parse.urlsplit(endpoint)
        options.update(endpoint_override=[endpoint_url.netloc or endpoint], scheme=[endpoint_url.scheme or "https"])
    if options or root not in _OPENED:
        query = urllib.parse.urlencode(options, doseq=True)
        try:
            _OPENED[root] = pafs.FileSystem.from_uri(f"{root}/?{query}" if query else f"{root}/")[0]
        except (OSError, ValueError) as exc:
            raise BadInputError(f"cannot open {root}: {reason(exc)}") from exc
    return root + url.path.rstrip("/")


def filesystems() -> dict[str, pafs.FileSystem]:
    """The file systems of the URIs this process has seen, for ``use`` in another process."""
    return dict(_OPENED)


def use(opened: Mapping[str, pafs.FileSystem]) -> None:
    """Open URIs with the file systems another process configured (``filesystems``)."""
    _OPENED.update(opened)


def is_local(path: PathLike) -> bool:
    return "://" not in os.fspath(path)


def join(path: PathLike, *names: str) -> str:
    """``path/name/...``, for a local path or a URI alike."""
    return posixpath.join(os.fspath(path), *names)


def _resolve(path: PathLike) -> tuple[pafs.FileSystem, str]:
    """The file system ``path`` is on, and the path there."""
    path = os.fspath(path)
    if is_local(path):
        return _LOCAL, os.path.abspath(path)
    url = urllib.parse.urlsplit(path)
    root = f"{url.scheme}://{url.netloc}"
    if root not in _OPENED:
        location(root)
    return _OPENED[root], (url.netloc + url.path if url.scheme in _BUCKETS else url.path)


def _path(path: PathLike) -> str:
    return os.path.abspath(os.fspath(path))


def _info(path: PathLike) -> pafs.FileInfo:
    filesystem, where = _resolve(path)
    try:
        return filesystem.get_file_info(where)
    except OSError as exc:  # refused (credentials), or nothing answers there
        raise BadInputError(f"cannot reach {path}: {reason(exc)}") from exc


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
    filesystem, where = _resolve(path)
    return sorted(info.base_name for info in filesystem.get_file_info(pafs.FileSelector(where)))


def glob(pattern: str) -> list[str]:
    """The paths a shell glob matches, sorted (``*``, ``?`` and ``[...]`` within a name)."""
    if is_local(pattern):
        return sorted(globbing.glob(pattern))
    parts = pattern.split("/")
    fixed = next(i for i, part in enumerate(parts) if has_magic(part))
    base = "/".join(parts[:fixed])
    filesystem, where = _resolve(base)
    below = filesystem.get_file_info(pafs.FileSelector(where, allow_not_found=True, recursive=True))
    found = [join(base, posixpath.relpath(info.path, where)) for info in below]
    return sorted(path for path in found if _matches(path.split("/"), parts))


def _matches(names: list[str], patterns: list[str]) -> bool:
    """Whether a path's names match a glob's, as the shell's: a leading ``.`` only explicitly."""
    return len(names) == len(patterns) and all(
        fnmatch.fnmatchcase(name, pattern) and (pattern.startswith(".") or not name.startswith("."))
        for name, pattern in zip(names, patterns)
    )


def has_magic(pattern: str) -> bool:
    return globbing.has_magic(pattern)


def files_below(directory: PathLike, skip: Callable[[str], bool]) -> Iterator[str]:
    """Every file below ``directory``, recursively and in name order, except those whose name, or
    a directory's on the way, ``skip`` says to leave out. A linked directory is not entered
    (it could loop)."""
    if not is_local(directory):  # object storage: no links, and one listing
        filesystem, where = _resolve(directory)
        files = [i.path for i in filesystem.get_file_info(pafs.FileSelector(where, recursive=True)) if i.is_file]
        names = [posixpath.relpath(path, where).split("/") for path in files]
        yield from (join(directory, *n) for n in sorted(names) if not any(map(skip, n)))
        return
    for name in list_dir(directory):
        if skip(name):
            continue
        entry = os.path.join(directory, name)
        if os.path.isdir(entry) and not os.path.islink(entry):
            yield from files_below(entry, skip)
        elif is_file(entry):
            yield entry


def open_input(path: PathLike) -> Any:
    """A file to read, with ``seek``, ``read`` and ``readinto`` (on object storage, ranged reads)."""
    filesystem, where = _resolve(path)
    return filesystem.open_input_file(where)


def open_output(path: PathLike) -> Any:
    """A new file to write (an existing one is replaced), with ``write`` and ``tell``; on object
    storage it appears whole when closed, or not at all."""
    filesystem, where = _resolve(path)
    return filesystem.open_output_stream(where)


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
    filesystem, where = _resolve(path)
    try:
        filesystem.create_dir(where, recursive=True)
    except OSError as exc:  # no such bucket, refused, or a file in the way
        raise BadInputError(f"cannot make {path}: {reason(exc)}") from exc


def rename(source: PathLike, target: PathLike) -> None:
    """Move the file ``source`` to ``target``, replacing a file there (on object storage a copy,
    then a delete: ``target`` appears whole, and ``source`` may stay if the move is cut short)."""
    filesystem, where = _resolve(source)
    filesystem.move(where, _resolve(target)[1])


def remove(path: PathLike, missing_ok: bool = False) -> None:
    """Delete a file, or a directory with everything in it."""
    info = _info(path)
    filesystem, where = _resolve(path)
    if info.type == pafs.FileType.Directory:
        filesystem.delete_dir(where)
    elif info.type != pafs.FileType.NotFound:
        filesystem.delete_file(where)
    elif not missing_ok:
        raise FileNotFoundError(f"no such file: {path}")


def sync(path: PathLike) -> None:
    """Make a local file's content, or a directory's entries, durable (``fsync``): what a
    commit relies on before it renames a file, and after, for the directory. Object storage
    has an object whole once it was written: nothing to do there."""
    if not is_local(path):
        return
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


def memory_map(path: PathLike) -> pa.MemoryMappedFile | pa.BufferReader:
    """A local file memory-mapped for reading (a part's index: pages are read as looked at); a
    file on object storage, read whole."""
    if not is_local(path):
        return pa.BufferReader(read_bytes(path))
    return pa.memory_map(_path(path))
