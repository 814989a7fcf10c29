"""State stores: key bytes -> the merged value held for that key.

``MemoryStore`` is a dict. ``RocksDBStore`` keeps state larger than memory on disk (through
rocksdict) and remembers up to which changelog offset it is current, so that a restart reads
only the changelog's tail. Neither knows about Kafka.
"""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mrkafka.errors import SetupError

__all__ = ["MemoryStore", "RocksDBStore", "open_store"]


class MemoryStore:
    def __init__(self) -> None:
        self._data: dict[bytes, Any] = {}
        self.checkpoint: int | None = None  # nothing survives a restart

    def get(self, key: bytes) -> Any:
        return self._data.get(key)

    def put(self, key: bytes, value: Any) -> None:
        self._data[key] = value

    def delete(self, key: bytes) -> None:
        self._data.pop(key, None)

    def update(self, keys: list[bytes], values: list[Any], merge: Callable[[Any, Any], Any]) -> None:
        """Merge each value into what is held for its key (or hold it), in order."""
        data = self._data
        for key, value in zip(keys, values):
            held = data.get(key)
            data[key] = value if held is None else merge(held, value)

    def items(self) -> Iterator[tuple[bytes, Any]]:
        return iter(self._data.items())

    def commit(self, changelog_offset: int) -> None:
        pass

    def close(self) -> None:
        pass


class RocksDBStore:
    """A RocksDB database in ``directory``, with a checkpoint file of the changelog offset."""

    def __init__(self, directory: Path) -> None:
        try:
            from rocksdict import Rdict
        except ImportError as exc:
            raise SetupError("--state rocksdb needs rocksdict: pip install 'mrkafka[rocksdb]'") from exc
        self.directory = directory
        self._checkpoint_file = directory / "checkpoint.json"
        self.checkpoint: int | None = None
        if self._checkpoint_file.exists():
            self.checkpoint = json.loads(self._checkpoint_file.read_text())["changelog_offset"]
        elif directory.exists():
            shutil.rmtree(directory)  # no checkpoint: the files are not known to be current
        directory.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(directory / "db"))
        self._count: int | None = None

    def get(self, key: bytes) -> Any:
        data = self._db.get(key)
        return None if data is None else pickle.loads(data)

    def put(self, key: bytes, value: Any) -> None:
        self._db[key] = pickle.dumps(value, protocol=5)

    def delete(self, key: bytes) -> None:
        del self._db[key]

    def update(self, keys: list[bytes], values: list[Any], merge: Callable[[Any, Any], Any]) -> None:
        for key, value in zip(keys, values):
            held = self.get(key)
            self.put(key, value if held is None else merge(held, value))

    def items(self) -> Iterator[tuple[bytes, Any]]:
        for key, data in self._db.items():
            yield key, pickle.loads(data)

    def commit(self, changelog_offset: int) -> None:
        """Flush to disk, then record that the store is current up to ``changelog_offset``."""
        self._db.flush()
        self.checkpoint = changelog_offset
        tmp = self._checkpoint_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"changelog_offset": changelog_offset}))
        tmp.replace(self._checkpoint_file)

    def close(self) -> None:
        self._db.close()


def open_store(kind: str, directory: Path) -> MemoryStore | RocksDBStore:
    if kind == "memory":
        return MemoryStore()
    if kind == "rocksdb":
        return RocksDBStore(directory)
    raise SetupError(f"unknown state store {kind!r} (choose memory or rocksdb)")
