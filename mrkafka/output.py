"""Part files, their formats, and the commit protocol.

Both engines write through here, which is what makes a batch run and a bounded stream run
comparable byte for byte. The commit follows Hadoop's FileOutputCommitter:

1. every task writes its part under ``OUTPUT/_temporary/`` (a reducer with its lookup index,
   ``_index/``, see ``mrkafka.index``);
2. once all tasks succeeded, the parts are renamed into ``OUTPUT/``;
3. ``_COUNTERS.json`` is written;
4. ``_SUCCESS`` is written last, so its presence means the output is whole.

A failed run removes ``_temporary/`` and leaves no ``_SUCCESS``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import socket
from collections.abc import Callable, Iterable
from json.encoder import c_make_encoder, encode_basestring, encode_basestring_ascii
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mrkafka import faults, kernels
from mrkafka.counters import Counters
from mrkafka.errors import BadInputError, JobFailedError, OutputExistsError, SetupError
from mrkafka.index import INDEX_DIR, write_index
from mrkafka.keys import from_key_bytes
from mrkafka.partial import KEY, VALUE, Rows, decode_values, is_pickled, key_kind
from mrkafka.settings import FORMATS

__all__ = ["COUNTERS", "SUCCESS", "OutputCommitter", "part_name", "sort_by_key", "to_json", "value_texts", "write_part"]

TEMPORARY = "_temporary"
SUCCESS = "_SUCCESS"
COUNTERS = "_COUNTERS.json"
LOCK = "_LOCK"
# What a previous output may hold, and so what --overwrite may delete.
_OWN_NAME = re.compile(rf"part-[rm]-\d{{5}}|_SUCCESS|_COUNTERS\.json|_temporary|_LOCK|{INDEX_DIR}")
_TEXT_CHUNK_ROWS = 1 << 20


def part_name(index: int, map_only: bool = False) -> str:
    """``part-r-00003`` (a reducer's part), or ``part-m-00003`` (a map-only split's)."""
    return f"part-{'m' if map_only else 'r'}-{index:05d}"


def sort_by_key(part: pa.Table | Rows) -> pa.Table | Rows:
    """Rows ordered by key bytes (stable, so rows of one key keep their order)."""
    if isinstance(part, Rows):
        return part.sorted_by_key()
    return part.take(kernels.sort_indices(part.column(KEY))) if part.num_rows else part


def _text(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    # Text parts keep bytes as they are: a str's surrogate escapes go back to its bytes.
    return _encoder(ensure_ascii=False, allow_nan=True)(value).encode("utf-8", "surrogateescape")


def to_json(value: Any, allow_nan: bool = True) -> bytes:
    """Compact JSON of ``value``, UTF-8; text that is not UTF-8 (surrogate escapes) as ``\\udcXX``
    escapes, which read back to the same bytes. NaN and infinities, which JSON lacks, are written
    as JavaScript's names, or are a ValueError unless ``allow_nan``."""
    try:
        return _encoder(ensure_ascii=False, allow_nan=allow_nan)(value).encode("utf-8")
    except UnicodeEncodeError:
        return _encoder(ensure_ascii=True, allow_nan=allow_nan)(value).encode("ascii")


@functools.cache
def _encoder(ensure_ascii: bool, allow_nan: bool) -> Callable[[Any], str]:
    """Compact JSON, as ``json.dumps(value, separators=(",", ":"), ...)`` writes it.

    ``json.dumps`` with arguments builds an encoder per call, and ``JSONEncoder.encode`` its C
    encoder per call: a part calls this once per row, so the standard library's C encoder is
    made once, here, and called directly (3x faster per value on a prefix index's rows)."""
    if c_make_encoder is None:  # a Python built without the json accelerator
        return json.JSONEncoder(
            separators=(",", ":"), ensure_ascii=ensure_ascii, allow_nan=allow_nan, default=_json_default
        ).encode
    strings = encode_basestring_ascii if ensure_ascii else encode_basestring
    encode = c_make_encoder({}, _json_default, strings, None, ":", ",", False, False, allow_nan)
    return lambda value: "".join(encode(value, 0))


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable: {value!r}")


def value_texts(part: pa.Table | Rows) -> pa.Array:
    """Each row's value as a text part writes it (what the lookup index shows too); 64-bit
    offsets, as a part's values may exceed 2 GiB."""
    if isinstance(part, pa.Table) and pa.types.is_integer(part.schema.field(VALUE).type):
        return pc.cast(part.column(VALUE), pa.string()).cast(pa.large_binary()).combine_chunks()
    return pa.array([_text(v) for v in _rows(part).values], pa.large_binary())


def _write_text(part: pa.Table | Rows, f, texts: pa.Array) -> None:
    keys = part.column(KEY) if isinstance(part, pa.Table) else pa.array(part.keys, pa.binary())
    for start in range(0, len(keys), _TEXT_CHUNK_ROWS):
        f.write(kernels.text_lines(keys[start : start + _TEXT_CHUNK_ROWS], texts[start : start + _TEXT_CHUNK_ROWS]))


def _rows(part: pa.Table | Rows) -> Rows:
    return part if isinstance(part, Rows) else Rows.of(part)


def _write_jsonl(part: pa.Table | Rows, f, texts: pa.Array | None) -> None:
    rows = _rows(part)
    for key, value in zip(rows.keys, rows.values):
        key = from_key_bytes(key, rows.kind)
        try:
            f.write(to_json({"key": key, "value": value}, allow_nan=False) + b"\n")
        except ValueError as exc:  # NaN or an infinity
            raise JobFailedError(f"key {key!r}: {exc}; JSON lines cannot hold it (use --format text)") from exc


def _write_parquet(part: pa.Table | Rows, f, texts: pa.Array | None) -> None:
    table = part.table() if isinstance(part, Rows) else part
    if is_pickled(table):
        text = [to_json(v).decode("utf-8", "surrogateescape") for v in decode_values(table)]
        values = pa.array([t.encode("utf-8", "surrogateescape") for t in text], pa.binary())
        table = table.set_column(1, VALUE, values.cast(pa.string(), safe=False))
    kind = key_kind(table)
    if kind == "str":  # every part of an output has one key type, whatever its keys hold
        keys = [k.decode("utf-8", "replace") for k in table.column(KEY).to_pylist()]
        table = table.set_column(0, KEY, pa.array(keys, pa.string()))
    elif kind == "int":
        table = table.set_column(0, KEY, pc.cast(table.column(KEY).cast(pa.string()), pa.int64()))
    pq.write_table(table, f)


_WRITERS = {"text": _write_text, "jsonl": _write_jsonl, "parquet": _write_parquet}


def write_part(part: pa.Table | Rows, path: str | Path, fmt: str = "text", index: bool = False) -> int:
    """Write a partial or its rows (already sorted) as one part file, and with ``index`` its
    lookup index (``mrkafka.index``); return the bytes written."""
    if fmt not in _WRITERS:
        raise BadInputError(f"unknown output format {fmt!r} (choose from {', '.join(FORMATS)})")
    texts = value_texts(part) if fmt == "text" or index else None
    try:
        with open(path, "wb") as f:
            _WRITERS[fmt](part, f, texts)
            written = f.tell()
        if index:
            write_index(part, path, texts)
        return written
    except OSError as exc:  # a full disk, a lost mount
        raise SetupError(f"cannot write {path}: {exc.strerror or exc}") from exc


class OutputCommitter:
    """The commit protocol for one output directory (see the module docstring).

    ``--overwrite`` replaces only a previous mrkafka output: a directory that holds nothing but
    part files and the files of this protocol. A directory holding anything else, holding an
    input, or being the working directory (or one above it) is refused, overwrite or not. A run
    holds ``OUTPUT/_LOCK`` (host and pid) from setup to commit or abort; a second run on the same
    output is refused while that process lives, and replaces the leftovers of a dead one.
    """

    def __init__(self, path: str | Path, overwrite: bool = False, inputs: Iterable[str | Path] = ()) -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        self._created = False
        self._locked = False
        resolved = self.path.resolve()
        if resolved == Path.cwd() or resolved in Path.cwd().parents:
            raise BadInputError(f"output {self.path} is the working directory or holds it: choose a new directory")
        for given in inputs:
            if resolved == Path(given).resolve() or resolved in Path(given).resolve().parents:
                raise BadInputError(f"output {self.path} holds the input {given}: choose another output directory")
        if not self.path.exists():
            return
        if not self.path.is_dir():
            raise OutputExistsError(f"output {self.path} exists and is not a directory")
        foreign = sorted(p.name for p in self.path.iterdir() if not _OWN_NAME.fullmatch(p.name))
        if foreign:
            raise OutputExistsError(
                f"output {self.path} holds files mrkafka did not write ({', '.join(foreign[:3])}"
                f"{', ...' if len(foreign) > 3 else ''}): choose a new directory, or empty it"
            )
        owner = _lock_owner(self.path / LOCK)
        if owner is not None:
            raise OutputExistsError(f"output {self.path} is being written by process {owner}: wait for it, or stop it")
        names = {p.name for p in self.path.iterdir()}
        left_by_a_dead_run = bool(names) and names <= {TEMPORARY, LOCK}
        if not overwrite and not left_by_a_dead_run:
            raise OutputExistsError(f"output {self.path} exists (remove it, or pass --overwrite)")

    @property
    def temporary(self) -> Path:
        return self.path / TEMPORARY

    def setup(self) -> None:
        self._created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        _take_lock(self.path / LOCK)
        self._locked = True
        if self.temporary.exists():
            shutil.rmtree(self.temporary)
        self.temporary.mkdir()

    def task_path(self, name: str) -> str:
        return str(self.temporary / name)

    def commit(self, counters: Counters) -> None:
        if self.overwrite:
            for old in self.path.iterdir():
                if old.name not in (TEMPORARY, LOCK):
                    shutil.rmtree(old) if old.is_dir() else old.unlink()
        for part in sorted(self.temporary.iterdir()):
            os.replace(part, self.path / part.name)
        self.temporary.rmdir()
        faults.point("commit-output")
        (self.path / COUNTERS).write_text(json.dumps(counters.as_dict(), indent=2) + "\n")
        (self.path / SUCCESS).touch()
        self._unlock()

    def abort(self) -> None:
        shutil.rmtree(self.temporary, ignore_errors=True)
        self._unlock()
        if self._created and self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()

    def _unlock(self) -> None:
        if self._locked:
            (self.path / LOCK).unlink(missing_ok=True)
            self._locked = False


def _lock_owner(lock: Path) -> str | None:
    """``pid N on HOST`` of the live process holding ``lock``; None if no process holds it.

    A lock of another host cannot be checked from here and counts as held."""
    try:
        host, pid = lock.read_text().split()
    except (FileNotFoundError, ValueError):
        return None
    if host == socket.gethostname():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
    return f"{pid} on {host}"


def _take_lock(lock: Path) -> None:
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            owner = _lock_owner(lock)
            if owner is not None:
                raise OutputExistsError(f"output {lock.parent} is being written by process {owner}") from None
            lock.unlink(missing_ok=True)  # left by a dead run
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{socket.gethostname()} {os.getpid()}\n")
        return
    raise OutputExistsError(f"output {lock.parent} is being written by another process")
