"""The commit protocol of an output directory: Hadoop's FileOutputCommitter, made durable and
safe to kill at any step.

1. Every task writes its part under ``OUTPUT/_temporary/`` (a reducer, when the run asks for
   it, with its lookup index under ``_index/``: see ``mrkafka.io.index``).
2. Once all tasks succeeded, the committer checks that every part and index the run should
   have written is there, writes ``_COUNTERS.json`` beside them and fsyncs each file.
3. With ``--overwrite``, the previous output moves aside into ``OUTPUT/_previous/``, its
   ``_SUCCESS`` first (from then on no ``_SUCCESS`` vouches for a partial output).
4. ``_temporary/`` is renamed ``_committing/``: this one atomic rename decides the commit.
5. Its files move into ``OUTPUT/``, the directory is fsynced, ``_SUCCESS`` is written and
   fsynced: ``_SUCCESS`` never survives a power loss that its parts did not.
6. ``_previous/`` and the empty ``_committing/`` are deleted.

A run killed during a commit leaves ``_previous/`` or ``_committing/``; the next run on the
output (overwrite or not) first finishes the commit if it was decided (step 4), or else
moves the previous output back: either the old output or the new one is whole, never
neither. A failed run removes ``_temporary/`` and leaves the output as it was; a killed
one's is removed by the next.
"""

from __future__ import annotations

import json
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
COMMITTING = "_committing"
PREVIOUS = "_previous"
SUCCESS = "_SUCCESS"
COUNTERS = "_COUNTERS.json"
LOCK = "_LOCK"
_PROTOCOL = (TEMPORARY, COMMITTING, PREVIOUS, LOCK)
# What a previous output may hold, and so what --overwrite may delete.
_OWN_NAME = re.compile(rf"part-[rm]-\d{{5}}|{SUCCESS}|_COUNTERS\.json|{INDEX_DIR}|{'|'.join(_PROTOCOL)}")


def part_name(index: int, map_only: bool = False) -> str:
    """``part-r-00003`` (a reducer's part), or ``part-m-00003`` (a map-only split's)."""
    return f"part-{'m' if map_only else 'r'}-{index:05d}"


class OutputCommitter:
    """The commit protocol for one output directory (see the module docstring).

    ``--overwrite`` replaces only a previous mrkafka output: a directory that holds nothing but
    part files and the files of this protocol. A directory holding anything else, holding an
    input, or being the working directory (or one above it) is refused, overwrite or not. A run
    holds a lock on ``OUTPUT/_LOCK`` (which names its host and pid) from ``setup`` to commit or
    abort; a second run on the same output is refused while it does, and replaces the leftovers
    of a dead one.
    """

    def __init__(self, path: str | Path, overwrite: bool = False, inputs: Iterable[str | Path] = ()) -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        self._created = False
        self._lock: fs.Lock | None = None
        self._expected: list[str] = []
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
        left_by_a_dead_run = bool(names) and set(names) <= {TEMPORARY, LOCK}
        if {TEMPORARY, COMMITTING, PREVIOUS} & set(names):  # a run is writing, or one was killed
            self._take_lock()
            self._recover()
            self._unlock()
        if not overwrite and not left_by_a_dead_run:
            raise OutputExistsError(f"output {self.path} exists (remove it, or pass --overwrite)")

    @property
    def temporary(self) -> Path:
        return self.path / TEMPORARY

    def setup(self, parts: int, map_only: bool = False, index: bool = False) -> None:
        """Take the output for a run that writes ``parts`` part files (and with ``index`` their
        lookup indexes): lock it and make ``_temporary/`` (and ``_temporary/_index/``)."""
        self._created = not fs.exists(self.path)
        fs.makedirs(self.path)
        self._take_lock()
        self._recover()  # a run killed since the check in __init__
        fs.makedirs(self.temporary)
        names = [part_name(k, map_only) for k in range(parts)]
        indexes = [p.relative_to(self.temporary) for name in names for p in index_paths(self.temporary / name)]
        self._expected = names + ([str(p) for p in indexes] if index else [])
        if index:  # tasks make no directory: one writing after an abort fails, leaving nothing
            fs.makedirs(self.temporary / INDEX_DIR)

    def task_path(self, name: str) -> str:
        return str(self.temporary / name)

    def commit(self, counters: Counters) -> None:
        """Steps 2 to 6 of the protocol: the output is whole once this returns."""
        missing = [name for name in self._expected if not fs.is_file(self.temporary / name)]
        if missing:
            raise SetupError(
                f"{self.temporary / missing[0]} is missing though its task succeeded "
                f"({len(missing)} files missing): an output must be on a file system every worker shares"
            )
        fs.write_bytes(self.temporary / COUNTERS, (json.dumps(counters.as_dict(), indent=2) + "\n").encode())
        for file in _entries_below(self.temporary):
            fs.sync(file)
        if self.overwrite:
            self._move_aside()
        fs.rename(self.temporary, self.path / COMMITTING)
        fs.sync(self.path)
        self._finish()
        self._unlock()

    def abort(self) -> None:
        fs.remove(self.temporary, missing_ok=True)
        self._unlock()
        if self._created and fs.is_dir(self.path) and not fs.list_dir(self.path):
            fs.remove(self.path)

    def _move_aside(self) -> None:
        """Step 3: the previous output into ``_previous/``, its ``_SUCCESS`` first."""
        old = [name for name in fs.list_dir(self.path) if name not in _PROTOCOL]
        if not old:
            return
        previous = self.path / PREVIOUS
        fs.makedirs(previous)
        for name in sorted(old, key=lambda name: name != SUCCESS):
            fs.rename(self.path / name, previous / name)
            faults.point("commit-aside")
        fs.sync(previous)
        fs.sync(self.path)

    def _finish(self) -> None:
        """Steps 5 and 6, from wherever a killed run left them."""
        committing = self.path / COMMITTING
        for name in fs.list_dir(committing):
            fs.remove(self.path / name, missing_ok=True)  # a directory is not replaced by a rename
            fs.rename(committing / name, self.path / name)
            faults.point("commit-part")
        fs.sync(self.path)
        faults.point("commit-output")
        fs.write_bytes(self.path / SUCCESS, b"")
        fs.sync(self.path / SUCCESS)
        fs.sync(self.path)
        faults.point("commit-success")
        fs.remove(self.path / PREVIOUS, missing_ok=True)
        fs.remove(committing)

    def _recover(self) -> None:
        """Clean up after a killed run: its ``_temporary/``; a decided commit it left half done
        is finished, an undecided one undone."""
        fs.remove(self.temporary, missing_ok=True)
        if fs.exists(self.path / COMMITTING):
            self._finish()
            return
        previous = self.path / PREVIOUS
        if not fs.exists(previous):
            return
        for name in sorted(fs.list_dir(previous), key=lambda name: name == SUCCESS):
            fs.rename(previous / name, self.path / name)
        fs.sync(self.path)
        fs.remove(previous)

    def _take_lock(self) -> None:
        lock = fs.Lock.take(self.path / LOCK)
        if lock is None:
            owner = fs.Lock.holder(self.path / LOCK) or "another process"
            raise OutputExistsError(f"output {self.path} is being written by {owner}: wait for it, or stop it")
        self._lock = lock

    def _unlock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def _entries_below(directory: Path) -> Iterator[Path]:
    """Every file and directory below ``directory``, the directories after what they hold."""
    for name in fs.list_dir(directory):
        if fs.is_dir(directory / name):
            yield from _entries_below(directory / name)
        else:
            yield directory / name
    yield directory
