"""State stores: key bytes -> the committed state of that key, and the checkpoint it is current to.

A store holds only committed state: a reducer keeps an interval's merges apart and hands
them to ``write`` once the changelog holds them, together with the changelog position they
bring the store to. ``write`` applies both at once, so a store is never ahead of its
changelog. ``MemoryStore`` holds columns (a dict where values are not int64s; nothing
survives a restart); ``RocksDBStore`` keeps state larger than memory on disk (rocksdict), the
checkpoint in the same atomic write batch, so that a restart reads only the changelog's tail,
and values in ``mrkafka.core.values``' encoding: what is on disk is never run. Neither knows
about Kafka; ``checkpoint_matches`` tells, from a changelog partition's offsets and a
record's digest, whether a checkpoint is that changelog's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from mrkafka.core import MISSING
from mrkafka.core.kernels.msgpack import pack_ints, unpack_ints
from mrkafka.core.kernels.table import KeyTable
from mrkafka.core.partial import KEY, VALUE
from mrkafka.core.values import UndecodableValue
from mrkafka.core.values import decode as decode_value
from mrkafka.core.values import encode as encode_value
from mrkafka.errors import BadInputError, SetupError

__all__ = [
    "Checkpoint",
    "MemoryStore",
    "RocksDBStore",
    "StateStore",
    "checkpoint_matches",
    "digest",
    "open_store",
    "record_digest",
    "rocksdict_module",
]


@dataclass(frozen=True)
class Checkpoint:
    """Where in its changelog partition a store is current to.

    ``offset`` is the next changelog offset to read; ``last_offset`` and ``last_digest``
    name the last record the store holds, and ``topic_id`` is the changelog's own id (Kafka
    gives a topic a new one when it is created again), so that a store can tell its own
    changelog from a recreated one. ``kind`` is the kind of the store's keys (str, bytes or int)."""

    offset: int
    last_offset: int | None = None
    last_digest: str | None = None
    kind: str | None = None
    topic_id: str | None = None


def digest(key: bytes | None, value: bytes | None) -> str:
    """A changelog record's digest, as a checkpoint names its last record."""
    return hashlib.blake2b((key or b"") + b"\0" + (value or b""), digest_size=16).hexdigest()


def record_digest(record: Any) -> str:
    return digest(record.key, record.value)


def checkpoint_matches(
    checkpoint: Checkpoint, begin: int, stable: int, high: int, found: tuple[int, str] | None, topic_id: str | None
) -> bool:
    """Whether a store's checkpoint belongs to this changelog partition.

    ``begin``, ``stable`` and ``high`` are the partition's beginning, last stable offset and
    high watermark; ``found`` is the offset and digest of the first record at or after
    ``checkpoint.last_offset`` (None if there is none, or if it lies past the last stable
    offset, where read_committed cannot read it); ``topic_id`` the changelog's id. A store of
    another topic id (a recreated changelog, even one grown past the store), ahead of its
    changelog's high watermark, or whose last record the changelog holds with other contents,
    does not match: it is wiped and restored in full. A store past the last stable offset but
    not past the high watermark matches: a transaction left open in the changelog (KAFKA-20734,
    or another producer's) hides the store's own committed records from read_committed readers,
    and a store restored from those readers would come out short. The digest alone cannot tell
    a recreated changelog whose offset ``last_offset`` is a transaction marker: the next record
    looks like the one compaction left."""
    if checkpoint.topic_id != topic_id or not begin <= checkpoint.offset <= high:
        return False
    if checkpoint.last_offset is None or checkpoint.last_offset < begin or checkpoint.last_offset >= stable:
        return True
    if found is None:
        return False
    offset, found_digest = found
    # A compacted changelog may have dropped the record (a newer one of its key exists).
    return offset != checkpoint.last_offset or found_digest == checkpoint.last_digest


class StateStore(Protocol):
    checkpoint: Checkpoint | None
    #: Whether the column methods (``lookup``, ``write_columns``, ``table``) serve: the store
    #: holds (or, on disk, may hold) int64 states only.
    columnar: bool

    def get(self, key: bytes, default: Any = MISSING) -> Any: ...

    def lookup(self, keys: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
        """Each key's state (0 where it has none) and whether it has one; None if a state
        found is not an int64."""

    def write_columns(
        self,
        keys: pa.Array,
        values: np.ndarray,
        checkpoint: Checkpoint,
        deleted: np.ndarray | None = None,
        distinct: bool = True,
    ) -> int:
        """Set each key's int64 state, or delete it where ``deleted``, and the checkpoint,
        atomically; the last of a key's rows wins unless ``distinct`` says there is one a key.
        Returns the rows written."""

    def table(self) -> pa.Table | None:
        """The keys and their states as columns ``key`` and ``value``; None if a state is not an int64."""

    def items(self) -> Iterator[tuple[bytes, Any]]: ...

    def write(self, changes: Mapping[bytes, Any], checkpoint: Checkpoint) -> None:
        """Apply ``changes`` (``MISSING`` deletes a key) and the checkpoint, atomically."""

    def size(self) -> tuple[int, int | None]:
        """Keys held, and bytes where the store can tell."""

    def wipe(self) -> None:
        """Forget everything, the checkpoint included."""

    def close(self) -> None: ...


class MemoryStore:
    """A partition's state in memory, as columns while every value is an int of 64 bits (the
    states of the built-in aggregates over integers): the keys in a compiled hash table
    (``KeyTable``), the values in an int64 column beside it, about 50 bytes a key where a dict
    takes 280. The first other value (a float, a dict, an int beyond 64 bits) turns it into a
    dict of Python values, for good."""

    def __init__(self) -> None:
        self.checkpoint: Checkpoint | None = None
        self._keys = KeyTable()
        self._values = np.zeros(0, np.int64)
        self._live = np.zeros(0, np.bool_)  # a key deleted keeps its row, not live
        self._objects: dict[bytes, Any] | None = None

    @property
    def columnar(self) -> bool:
        return self._objects is None

    def get(self, key: bytes, default: Any = MISSING) -> Any:
        if self._objects is not None:
            return self._objects.get(key, default)
        (row,) = self._keys.find(pa.array([key], pa.binary()))
        return int(self._values[row]) if row >= 0 and self._live[row] else default

    def lookup(self, keys: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """Columns only: each key's value (0 where it has none) and whether it has one."""
        rows = self._keys.find(keys)
        found = rows >= 0
        found[found] = self._live[rows[found]]
        values = np.zeros(len(rows), np.int64)
        values[found] = self._values[rows[found]]
        return values, found

    def items(self) -> Iterator[tuple[bytes, Any]]:
        """A snapshot: the copy is made at once (under the GIL), safe from another thread."""
        if self._objects is not None:
            return iter(list(self._objects.items()))
        table = self.table()
        return zip(table.column(KEY).to_pylist(), table.column(VALUE).to_pylist())

    def table(self) -> pa.Table | None:
        """The live keys and their values, as columns ``key`` and ``value``; None once the store holds Python values."""
        if self._objects is not None:
            return None
        rows = self._keys.rows  # a writer in another thread may add rows meanwhile
        live = self._live[:rows]
        keys = self._keys.keys(rows)
        values = self._values[:rows]
        if not live.all():
            keys, values = keys.filter(pa.array(live)), values[live]
        return pa.table({KEY: keys, VALUE: pa.array(values, pa.int64())})

    def write(self, changes: Mapping[bytes, Any], checkpoint: Checkpoint) -> None:
        if self._objects is None and all(_is_int64(v) or v is MISSING for v in changes.values()):
            deleted = np.fromiter((v is MISSING for v in changes.values()), np.bool_, len(changes))
            values = np.fromiter((0 if v is MISSING else v for v in changes.values()), np.int64, len(changes))
            self.write_columns(pa.array(list(changes), pa.binary()), values, checkpoint, deleted)
            return
        if self._objects is None:
            self._objects = dict(self.items())
            self._keys, self._values, self._live = KeyTable(), self._values[:0], self._live[:0]
        data = self._objects
        for key, value in changes.items():
            if value is MISSING:
                data.pop(key, None)
            else:
                data[key] = value
        self.checkpoint = checkpoint

    def write_columns(
        self,
        keys: pa.Array,
        values: np.ndarray,
        checkpoint: Checkpoint,
        deleted: np.ndarray | None = None,
        distinct: bool = True,
    ) -> int:
        """Columns only: see ``StateStore.write_columns``."""
        rows = self._keys.add(keys)
        if not distinct:
            _, last = np.unique(rows[::-1], return_index=True)
            pick = len(rows) - 1 - last
            rows, values = rows[pick], values[pick]
            deleted = None if deleted is None else deleted[pick]
        size = self._keys.rows
        if size > len(self._values):
            grown = max(size, 2 * len(self._values))
            self._values = np.concatenate([self._values, np.zeros(grown - len(self._values), np.int64)])
            self._live = np.concatenate([self._live, np.zeros(grown - len(self._live), np.bool_)])
        self._values[rows] = values
        self._live[rows] = True if deleted is None else ~deleted
        self.checkpoint = checkpoint
        return len(rows)

    def size(self) -> tuple[int, int | None]:
        """Keys held, and bytes (columns: their arrays; a dict of Python values: unknown)."""
        if self._objects is not None:
            return len(self._objects), None
        live = int(np.count_nonzero(self._live[: self._keys.rows]))
        return live, self._keys.nbytes() + self._values.nbytes + self._live.nbytes

    def wipe(self) -> None:
        self.__init__()  # type: ignore[misc]

    def close(self) -> None:
        pass


def _is_int64(value: Any) -> bool:
    return type(value) is int and -(2**63) <= value < 2**63


log = logging.getLogger(__name__)

_CHECKPOINT = b"checkpoint"
#: How values are written (in column family ``meta``); a database without it is an older
#: mrkafka's (pickled values): it is wiped as it opens, and restored from the changelog.
_FORMAT, _VALUES = b"format", b"msgpack"


class RocksDBStore:
    """A RocksDB database in ``directory``: state in the default column family, the
    checkpoint in column family ``meta``, both changed by one write batch."""

    def __init__(self, directory: Path) -> None:
        self._rocksdict = rocksdict_module()
        self.directory = directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInputError(f"cannot use --state-dir {directory}: {exc.strerror}") from exc
        self._open()

    def _open(self) -> None:
        rd = self._rocksdict
        options = rd.Options(raw_mode=True)
        options.create_if_missing(True)
        path = str(self.directory / "db")
        families = {"meta": rd.Options(raw_mode=True)} if "meta" in _families(rd, path) else {}
        self._db = rd.Rdict(path, options, column_families=families)
        self._meta = self._db.get_column_family("meta") if families else self._db.create_column_family("meta", options)
        data = self._meta.get(_CHECKPOINT)
        if data is not None and self._meta.get(_FORMAT) != _VALUES:
            log.warning("%s holds values in an older format; restoring it from the changelog", self.directory)
            self.wipe()
            return
        self.checkpoint = Checkpoint(**json.loads(data)) if data is not None else None

    def _decode(self, key: bytes, data: bytes) -> Any:
        try:
            return decode_value(data)
        except UndecodableValue as exc:
            raise BadInputError(
                f"the state store in {self.directory} holds a value mrkafka did not write at key {key!r} ({exc}); "
                "delete the directory, and the next run restores it from the changelog"
            ) from None

    def get(self, key: bytes, default: Any = MISSING) -> Any:
        data = self._db.get(key)
        return default if data is None else self._decode(key, data)

    def items(self) -> Iterator[tuple[bytes, Any]]:
        for key, data in self._db.items():
            yield key, self._decode(key, data)

    def write(self, changes: Mapping[bytes, Any], checkpoint: Checkpoint) -> None:
        batch = self._rocksdict.WriteBatch(raw_mode=True)
        for key, value in changes.items():
            if value is MISSING:
                batch.delete(key)
            else:
                batch.put(key, encode_value(value))
        self._write(batch, checkpoint)

    def _write(self, batch: Any, checkpoint: Checkpoint) -> None:
        """Write ``batch`` with the checkpoint (and the values' format) in it."""
        meta = self._db.get_column_family_handle("meta")
        batch.put(_FORMAT, _VALUES, meta)
        batch.put(_CHECKPOINT, json.dumps(asdict(checkpoint)).encode(), meta)
        self._db.write(batch)
        self.checkpoint = checkpoint

    #: Its states may be int64s: the column methods read them as such, or tell that they are not.
    columnar = True

    def lookup(self, keys: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
        """One multi-get, the values decoded a column at a time (``unpack_ints``)."""
        encoded = pa.array(self._db.get(keys.to_pylist()), pa.binary())
        values, ints = unpack_ints(encoded)
        found = encoded.is_valid().to_numpy(zero_copy_only=False)
        return None if (found & ~ints).any() else (values, found)

    def write_columns(
        self,
        keys: pa.Array,
        values: np.ndarray,
        checkpoint: Checkpoint,
        deleted: np.ndarray | None = None,
        distinct: bool = True,
    ) -> int:
        """One write batch from the columns (in a batch, as in RocksDB, a key's last row wins)."""
        batch = self._rocksdict.WriteBatch(raw_mode=True)
        encoded = pack_ints(values).to_pylist()
        gone = deleted.tolist() if deleted is not None else [False] * len(encoded)
        for key, value, delete in zip(keys.to_pylist(), encoded, gone):
            if delete:
                batch.delete(key)
            else:
                batch.put(key, value)
        self._write(batch, checkpoint)
        return len(encoded)

    def table(self) -> pa.Table | None:
        items = list(self._db.items())
        encoded = pa.array([value for _, value in items], pa.binary())
        values, ints = unpack_ints(encoded)
        if not ints.all():
            return None
        return pa.table({KEY: pa.array([key for key, _ in items], pa.binary()), VALUE: pa.array(values, pa.int64())})

    def size(self) -> tuple[int, int | None]:
        """Keys held and bytes: RocksDB's own estimates (live data, memtables)."""
        db = self._db
        if db is None:
            return 0, None
        keys = db.property_int_value("rocksdb.estimate-num-keys") or 0
        estimates = ("rocksdb.estimate-live-data-size", "rocksdb.cur-size-all-mem-tables")
        size = sum(db.property_int_value(estimate) or 0 for estimate in estimates)
        return keys, size

    def wipe(self) -> None:
        self.close()
        shutil.rmtree(self.directory / "db", ignore_errors=True)
        self._open()

    def close(self) -> None:
        if self._db is not None:
            del self._meta
            self._db.close()
            self._db = None


def _families(rd: Any, path: str) -> list[str]:
    try:
        return rd.Rdict.list_cf(path)
    except Exception:  # no database there yet
        return []


def rocksdict_module() -> Any:
    """rocksdict, which ``--state rocksdb`` needs: an extra of mrkafka's, installed or not."""
    try:
        import rocksdict
    except ImportError as exc:
        raise SetupError("--state rocksdb needs rocksdict: pip install 'mrkafka[rocksdb]'") from exc
    return rocksdict


def open_store(backend: str, directory: Path) -> MemoryStore | RocksDBStore:
    """A store of ``backend`` (``--state``: memory or rocksdb), RocksDB's files under ``directory``."""
    if backend == "memory":
        return MemoryStore()
    if backend == "rocksdb":
        return RocksDBStore(directory)
    raise SetupError(f"unknown state store {backend!r} (choose memory or rocksdb)")
