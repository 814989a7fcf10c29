"""The commit protocol of an output directory: Hadoop's FileOutputCommitter, made durable and
safe to kill at any step, on a local file system and on object storage alike (where a rename
is a copy, and only of a file).

1. Every task writes its part under ``OUTPUT/_temporary/`` (a reducer, when the run asks for
   it, with its lookup index under ``_index/``: see ``mrkafka.io.index``).
2. Once all tasks succeeded, the committer checks that every part and index the run should
   have written is there, writes ``_COUNTERS.json`` beside them and fsyncs each file.
3. It writes the manifest, every file of the new output and its size, as
   ``OUTPUT/_COMMITTING``: this one object, written whole or not at all, decides the commit.
4. The previous output's ``_SUCCESS`` goes first, then its files the new output does not have;
   each file of the manifest moves from ``_temporary/`` to its final name (replacing the
   previous output's), and the directories are fsynced.
5. ``_SUCCESS`` is written last, naming every part and its size (as Hadoop's S3A committers
   do), and fsynced: ``_SUCCESS`` never survives a power loss that its parts did not.
6. ``_COMMITTING`` and the empty ``_temporary/`` are deleted.

Until step 3 the previous output is untouched; after it, the new output is whole between
``OUTPUT/`` and ``_temporary/``. A run killed during a commit leaves ``_COMMITTING`` or not: the
next run on the output (overwrite or not) first finishes the commit if it was decided, or else
removes ``_temporary/``: either the old output or the new one is whole, never neither. A
failed run removes ``_temporary/`` and leaves the output as it was.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from mrkafka.core.counters import Counters
from mrkafka.errors import BadInputError, OutputExistsError, SetupError
from mrkafka.io import fs
from mrkafka.io.index import INDEX_DIR, index_paths
from mrkafka.obs import faults

__all__ = ["COUNTERS", "SUCCESS", "OutputCommitter", "part_name"]

TEMPORARY = "_temporary"
COMMITTING = "_COMMITTING"
SUCCESS = "_SUCCESS"
COUNTERS = "_COUNTERS.json"
LOCK = "_LOCK"
_PROTOCOL = (TEMPORARY, COMMITTING, LOCK)
# What a previous output may hold, and so what --overwrite may delete.
_OWN_NAME = re.compile(rf"part-[rm]-\d{{5}}|{SUCCESS}|_COUNTERS\.json|{INDEX_DIR}|{'|'.join(_PROTOCOL)}")


def part_name(index: int, map_only: bool = False) -> str:
    """``part-r-00003`` (a reducer's part), or ``part-m-00003`` (a map-only split's)."""
    return f"part-{'m' if map_only else 'r'}-{index:05d}"


class OutputCommitter:
    """The commit protocol for one output directory (see the module docstring).

    ``--overwrite`` replaces only a previous mrkafka output: a directory that holds nothing but
    part files and the files of this protocol. A directory holding anything else, holding an
    input, or being the working directory (or one above it) is refused, overwrite or not. On a
    local file system a run holds a lock on ``OUTPUT/_LOCK`` (which names its host and pid)
    from ``setup`` to commit or abort; a second run on the same output is refused while it
    does, and replaces the leftovers of a dead one. Object storage has no lock to take: there,
    two runs must not write one output at once.
    """

    def __init__(self, path: str | Path, overwrite: bool = False, inputs: Iterable[str | Path] = ()) -> None:
        self.path = fs.location(path)
        self.overwrite = overwrite
        self._created = False
        self._lock: fs.Lock | None = None
        self._expected: list[str] = []
        self._decided = False
        for given in inputs:
            if _within(self.path, os.fspath(given)):
                raise BadInputError(f"output {self.path} holds the input {given}: choose another output directory")
        if fs.is_local(self.path) and _within(self.path, os.getcwd()):
            raise BadInputError(f"output {self.path} is the working directory or holds it: choose a new directory")
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
        left_by_a_dead_run = bool(names) and set(names) <= {TEMPORARY, LOCK}
        if {TEMPORARY, COMMITTING} & set(names):  # a run is writing, or one was killed
            self._take_lock()
            try:
                self._recover()
            finally:
                self._unlock()
        if not overwrite and not left_by_a_dead_run:
            raise OutputExistsError(f"output {self.path} exists (remove it, or pass --overwrite)")

    @property
    def temporary(self) -> str:
        return fs.join(self.path, TEMPORARY)

    def _at(self, *names: str) -> str:
        return fs.join(self.path, *names)

    def setup(self, parts: int, map_only: bool = False, index: bool = False) -> None:
        """Take the output for a run that writes ``parts`` part files (and with ``index`` their
        lookup indexes): lock it and make ``_temporary/`` (and ``_temporary/_index/``)."""
        self._created = not fs.exists(self.path)
        fs.makedirs(self.path)
        self._take_lock()
        self._recover()  # a run killed since the check in __init__
        fs.makedirs(self.temporary)
        names = [part_name(k, map_only) for k in range(parts)]
        self._expected = names + ([p for name in names for p in index_paths(name)] if index else [])
        if index:  # tasks make no directory: one writing after an abort fails, leaving nothing
            fs.makedirs(fs.join(self.temporary, INDEX_DIR))

    def task_path(self, name: str) -> str:
        return fs.join(self.temporary, name)

    def commit(self, counters: Counters) -> None:
        """Steps 2 to 6 of the protocol: the output is whole once this returns."""
        missing = [name for name in self._expected if not fs.is_file(self.task_path(name))]
        if missing:
            raise SetupError(
                f"{self.task_path(missing[0])} is missing though its task succeeded "
                f"({len(missing)} files missing): an output must be on a file system every worker shares"
            )
        fs.write_bytes(self.task_path(COUNTERS), (json.dumps(counters.as_dict(), indent=2) + "\n").encode())
        for file in _entries_below(self.temporary):
            fs.sync(file)
        manifest = {name: fs.size(self.task_path(name)) for name in [*self._expected, COUNTERS]}
        faults.point("commit-decide")
        fs.write_bytes(self.task_path(COMMITTING), json.dumps(manifest, indent=1).encode())
        fs.sync(self.task_path(COMMITTING))
        fs.rename(self.task_path(COMMITTING), self._at(COMMITTING))
        fs.sync(self.path)
        self._decided = True
        self._finish()
        self._unlock()

    def abort(self) -> None:
        """Undo a run that failed: its ``_temporary/`` goes, unless the commit was decided (the next
        run on the output finishes it)."""
        if not self._decided:
            fs.remove(self.temporary, missing_ok=True)
        self._unlock()
        if self._created and fs.is_dir(self.path) and not fs.list_dir(self.path):
            fs.remove(self.path)

    def _finish(self) -> None:
        """Steps 4 to 6, from wherever a killed run left them."""
        manifest: dict[str, int] = json.loads(fs.read_bytes(self._at(COMMITTING)))
        fs.remove(self._at(SUCCESS), missing_ok=True)
        directories = {posixpath.dirname(name) for name in manifest}
        for old in fs.list_dir(self.path):  # the previous output's files the new one has not
            if old in manifest or old in _PROTOCOL:
                continue
            gone = [n for n in _files_below(self._at(old), old) if n not in manifest] if old in directories else [old]
            for name in gone:
                fs.remove(self._at(name))
        for name, size in manifest.items():
            if fs.exists(self.task_path(name)):
                fs.makedirs(self._at(posixpath.dirname(name)))
                fs.rename(self.task_path(name), self._at(name))
                faults.point("commit-part")
            elif not (fs.is_file(self._at(name)) and fs.size(self._at(name)) == size):
                raise SetupError(f"{self._at(name)} is not whole and {self.task_path(name)} is gone: run again")
        for directory in directories:
            fs.sync(self._at(directory))
        faults.point("commit-output")
        parts = {name: size for name, size in manifest.items() if name.startswith("part-")}
        fs.write_bytes(self._at(SUCCESS), (json.dumps({"parts": parts}, indent=1) + "\n").encode())
        fs.sync(self._at(SUCCESS))
        fs.sync(self.path)
        faults.point("commit-success")
        fs.remove(self.temporary, missing_ok=True)
        fs.remove(self._at(COMMITTING))

    def _recover(self) -> None:
        """Clean up after a killed run: a decided commit it left half done is finished, an
        undecided one's ``_temporary/`` removed."""
        if fs.exists(self._at(COMMITTING)):
            self._finish()
        fs.remove(self.temporary, missing_ok=True)

    def _take_lock(self) -> None:
        if not fs.is_local(self.path):
            return
        lock = fs.Lock.take(self._at(LOCK))
        if lock is None:
            owner = fs.Lock.holder(self._at(LOCK)) or "another process"
            raise OutputExistsError(f"output {self.path} is being written by {owner}: wait for it, or stop it")
        self._lock = lock

    def _unlock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def _within(path: str, other: str) -> bool:
    """Whether ``path`` is ``other`` or a directory above it."""
    if fs.is_local(path) != fs.is_local(other):
        return False
    if fs.is_local(path):
        path, other = str(Path(path).resolve()), str(Path(other).resolve())
    return other == path or other.startswith(path.rstrip("/") + "/")


def _files_below(directory: str, named: str) -> Iterator[str]:
    """Every file below ``directory``, by its path from the directory above, where it is ``named``."""
    for name in fs.list_dir(directory):
        if fs.is_dir(fs.join(directory, name)):
            yield from _files_below(fs.join(directory, name), fs.join(named, name))
        else:
            yield fs.join(named, name)


def _entries_below(directory: str) -> Iterator[str]:
    """Every file and directory below ``directory``, the directories after what they hold."""
    for name in fs.list_dir(directory):
        if fs.is_dir(fs.join(directory, name)):
            yield from _entries_below(fs.join(directory, name))
        else:
            yield fs.join(directory, name)
    yield directory
