"""The commit protocol of an output directory, as Hadoop's FileOutputCommitter has it:

1. every task writes its part under ``OUTPUT/_temporary/`` (a reducer with its lookup index,
   ``_index/``, see ``mrkafka.io.index``);
2. once all tasks succeeded, the parts are renamed into ``OUTPUT/``;
3. ``_COUNTERS.json`` is written;
4. ``_SUCCESS`` is written last, so its presence means the output is whole.

A failed run removes ``_temporary/`` and leaves no ``_SUCCESS``.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Iterable
from pathlib import Path

from mrkafka.core.counters import Counters
from mrkafka.errors import BadInputError, OutputExistsError
from mrkafka.io import fs
from mrkafka.io.index import INDEX_DIR
from mrkafka.obs import faults

__all__ = ["COUNTERS", "SUCCESS", "OutputCommitter", "part_name"]

TEMPORARY = "_temporary"
SUCCESS = "_SUCCESS"
COUNTERS = "_COUNTERS.json"
LOCK = "_LOCK"
# What a previous output may hold, and so what --overwrite may delete.
_OWN_NAME = re.compile(rf"part-[rm]-\d{{5}}|_SUCCESS|_COUNTERS\.json|_temporary|_LOCK|{INDEX_DIR}")


def part_name(index: int, map_only: bool = False) -> str:
    """``part-r-00003`` (a reducer's part), or ``part-m-00003`` (a map-only split's)."""
    return f"part-{'m' if map_only else 'r'}-{index:05d}"


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
        if not fs.exists(self.path):
            return
        if not fs.is_dir(self.path):
            raise OutputExistsError(f"output {self.path} exists and is not a directory")
        names = fs.list_dir(self.path)
        foreign = [name for name in names if not _OWN_NAME.fullmatch(name)]
        if foreign:
            raise OutputExistsError(
                f"output {self.path} holds files mrkafka did not write ({', '.join(foreign[:3])}"
                f"{', ...' if len(foreign) > 3 else ''}): choose a new directory, or empty it"
            )
        owner = _lock_owner(self.path / LOCK)
        if owner is not None:
            raise OutputExistsError(f"output {self.path} is being written by process {owner}: wait for it, or stop it")
        left_by_a_dead_run = bool(names) and set(names) <= {TEMPORARY, LOCK}
        if not overwrite and not left_by_a_dead_run:
            raise OutputExistsError(f"output {self.path} exists (remove it, or pass --overwrite)")

    @property
    def temporary(self) -> Path:
        return self.path / TEMPORARY

    def setup(self) -> None:
        self._created = not fs.exists(self.path)
        fs.makedirs(self.path)
        _take_lock(self.path / LOCK)
        self._locked = True
        fs.remove(self.temporary, missing_ok=True)
        fs.makedirs(self.temporary)

    def task_path(self, name: str) -> str:
        return str(self.temporary / name)

    def commit(self, counters: Counters) -> None:
        if self.overwrite:
            for old in fs.list_dir(self.path):
                if old not in (TEMPORARY, LOCK):
                    fs.remove(self.path / old)
        for part in fs.list_dir(self.temporary):
            fs.rename(self.temporary / part, self.path / part)
        fs.remove(self.temporary)
        faults.point("commit-output")
        fs.write_bytes(self.path / COUNTERS, (json.dumps(counters.as_dict(), indent=2) + "\n").encode())
        fs.write_bytes(self.path / SUCCESS, b"")
        self._unlock()

    def abort(self) -> None:
        fs.remove(self.temporary, missing_ok=True)
        self._unlock()
        if self._created and fs.is_dir(self.path) and not fs.list_dir(self.path):
            fs.remove(self.path)

    def _unlock(self) -> None:
        if self._locked:
            fs.remove(self.path / LOCK, missing_ok=True)
            self._locked = False


def _lock_owner(lock: Path) -> str | None:
    """``pid N on HOST`` of the live process holding ``lock``; None if no process holds it.

    A lock of another host cannot be checked from here and counts as held."""
    try:
        host, pid = fs.read_text(lock).split()
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
        if fs.create_exclusive(lock, f"{socket.gethostname()} {os.getpid()}\n".encode()):
            return
        owner = _lock_owner(lock)
        if owner is not None:
            raise OutputExistsError(f"output {lock.parent} is being written by process {owner}")
        fs.remove(lock, missing_ok=True)  # left by a dead run
    raise OutputExistsError(f"output {lock.parent} is being written by another process")
