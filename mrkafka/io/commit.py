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
import shutil
import socket
from collections.abc import Iterable
from pathlib import Path

from mrkafka.core.counters import Counters
from mrkafka.errors import BadInputError, OutputExistsError
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
