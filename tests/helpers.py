"""Test helpers: the independent word-count oracle, a reader of part files, messy input, free ports."""

from __future__ import annotations

import collections
import functools
import os
import pickle
import random
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from mrkafka.devtools.launcher import CONTROLLER_PORT_OFFSET, INTERNAL_PORT_OFFSET
from mrkafka.devtools.processes import port_free

ROOT = Path(__file__).resolve().parent.parent
WORDCOUNT = ROOT / "jobs" / "wordcount.py"


def oracle_wordcount(data: bytes) -> collections.Counter:
    """What word count must output: ``bytes.split()`` of every line, counted."""
    counts: collections.Counter = collections.Counter()
    for line in data.split(b"\n"):
        counts.update(line.split())
    return counts


def read_parts(output: Path, prefix: str = "part-r-") -> dict[bytes, bytes]:
    """``key -> value`` over every part file of a text output; fails on a repeated key."""
    result: dict[bytes, bytes] = {}
    for part in sorted(output.glob(f"{prefix}*")):
        for line in part.read_bytes().splitlines():
            key, _, value = line.rpartition(b"\t")
            assert key not in result, f"{key!r} in two parts"
            result[key] = value
    return result


def messy_corpus(seed: int = 7, lines: int = 3000) -> bytes:
    """Text that exercises the record reader: CRLF, empty and long lines, bytes that are
    not UTF-8, runs of every ASCII whitespace, and no newline at the end."""
    import random

    rng = random.Random(seed)
    vocab = [b"alpha", b"Beta", b"gamma", b"\xe9t\xe9", b"\xff\xfe", b"na\xc3\xafve", b"x" * 300, b"I", b"am"]
    spaces = [b" ", b"  ", b"\t", b"\x0b", b"\x0c", b" \t "]
    out = []
    for i in range(lines):
        if i % 97 == 0:
            out.append(b"")
            continue
        n = rng.randint(1, 4000 if i % 501 == 0 else 12)
        words = [rng.choice(vocab) + (b"%d" % rng.randint(0, 50) if rng.random() < 0.3 else b"") for _ in range(n)]
        line = rng.choice(spaces).join(words)
        if i % 5 == 0:
            line = b" " + line + b"\t"
        out.append(line + (b"\r" if i % 3 == 0 else b""))
    return b"\n".join(out)


@functools.lru_cache(maxsize=4)
def real_text(size: int = 2 << 20) -> bytes:
    """About ``size`` bytes of this machine's package documentation, its longest lines (20 KB)
    and words (3 KB) included: real text, which synthetic corpora do not imitate well."""
    from benchmarks.corpus import docs_text

    return docs_text(size)


def tricky_corpus(size: int = 2 << 20) -> bytes:
    """Messy synthetic lines, real text, and one word of 900 KB (a record near Kafka's limit)."""
    return messy_corpus(lines=2000) + b"\n" + real_text(size) + b"w" * 900_000 + b" end\n"


#: A job whose map raises on the line "bad": for the tests of how a job's error is reported.
PICKY_JOB = """
from mrkafka import Job, StreamOptions
class Picky(Job):
    stream = StreamOptions(value_serde="long")
    def map(self, offset, line):
        if line == "bad":
            raise ValueError("no bad lines")
        yield line, 1
    def reduce(self, a, b):
        return a + b
"""


def exploit_pickle(marker: Path) -> bytes:
    """A pickle that, if anything unpickled it, would run ``touch marker``."""
    return pickle.dumps(_RunsWhenUnpickled(marker))


class _RunsWhenUnpickled:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_job(directory: Path, source: str, name: str = "job.py") -> Path:
    """Write a job file (source dedented) into ``directory``; return its path."""
    import textwrap

    path = directory / name
    path.write_text(textwrap.dedent(source))
    return path


def _ephemeral_start() -> int:
    try:
        return int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(count: int) -> int:
    """A first client port such that a cluster of ``count`` nodes finds all its ports free (a
    secured one's inter-broker ports too).

    Below the ephemeral range: while a broker is down, clients retrying a connection to an
    ephemeral port can be handed that very port and connect to themselves, taking it."""
    top = min(_ephemeral_start(), 40000) - INTERNAL_PORT_OFFSET - count
    for _ in range(100):
        port = random.randrange(15000, top)
        offsets = (0, CONTROLLER_PORT_OFFSET, INTERNAL_PORT_OFFSET)
        wanted = [port + offset + i for offset in offsets for i in range(count)]
        if all(port_free(p) for p in wanted):
            return port
    raise RuntimeError("no free ports")


def cli(*args: str) -> tuple[int, str]:
    """``mrkafka ARGS`` in this process: the exit code and what it wrote to stderr."""
    from click.testing import CliRunner

    from mrkafka.cli import main

    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stderr


def mrkafka(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``mrkafka ARGS`` in a process of its own, as a user runs it (``kafka tool`` becomes the
    Java tool it runs; ``topic reassign`` runs one whose output is the command's)."""
    command = [sys.executable, "-m", "mrkafka.cli", *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=180)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insert, delete, substitute), the whole table: a test's oracle."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        previous, row = row, [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (ca != cb))
    return row[-1]


class Record(NamedTuple):
    """A consumed record, as the stream tasks see one (they take any object with these fields)."""

    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 0
    headers: Sequence[tuple[str, bytes]] = ()


def process(mapper: Any, partition: int, records: Sequence[Any]) -> None:
    """Map and combine one poll of one input partition into what its task holds, as a map worker does."""
    from mrkafka.kafka.records import Polled

    mapper.hold(partition, mapper.map(partition, Polled.of(records)))


def held_tasks(mapper: Any) -> list[int]:
    """The input partitions whose tasks hold partials."""
    return list(mapper._held)


def pending(reducer: Any) -> int:
    """The keys a stream reducer merged since its last commit."""
    return reducer.pending_keys()


def partial_to_pairs(table: Any) -> Iterator[tuple[Any, Any]]:
    """The ``(key, value)`` pairs of a partial, decoded to the Python types the job produced."""
    from mrkafka.core.keys import from_key_bytes
    from mrkafka.core.partial import KEY, decode_values, key_kind

    kind = key_kind(table)
    return zip((from_key_bytes(k, kind) for k in table.column(KEY).to_pylist()), decode_values(table))


_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK32 = 0xFFFFFFFF


def _signed(h: int) -> int:
    return h - (1 << 32) if h & 0x80000000 else h


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2``: the 32-bit hash as a signed Java int, in plain Python (the
    oracle of the compiled one)."""
    length = len(data)
    h = (_SEED ^ length) & _MASK32
    n4 = length // 4
    if n4:
        ks = np.frombuffer(data, dtype="<u4", count=n4).astype(np.uint64)
        ks = (ks * _M) & _MASK32
        ks ^= ks >> 24
        ks = (ks * _M) & _MASK32
        for k in ks.tolist():
            h = ((h * _M) & _MASK32) ^ k
    tail = data[n4 * 4 :]
    if tail:
        for i in range(len(tail) - 1, -1, -1):
            h ^= tail[i] << (8 * i)
        h = (h * _M) & _MASK32
    h ^= h >> 13
    h = (h * _M) & _MASK32
    h ^= h >> 15
    return _signed(h)


def to_positive(h: int) -> int:
    """Kafka's ``Utils.toPositive``."""
    return h & 0x7FFFFFFF


def listening(pid: int, port: int) -> list[str]:
    """The addresses a process listens on at ``port``, from the kernel's table of sockets (an IPv4
    address an IPv6 socket listens on, as Java's do, as IPv4)."""
    import ipaddress

    import psutil

    connections = psutil.Process(pid).net_connections(kind="tcp6") + psutil.Process(pid).net_connections(kind="tcp4")
    found = [ipaddress.ip_address(c.laddr.ip) for c in connections if c.status == "LISTEN" and c.laddr.port == port]
    return [str(getattr(ip, "ipv4_mapped", None) or ip) for ip in found]
