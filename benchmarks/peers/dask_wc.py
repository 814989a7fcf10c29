"""Dask bag: read_text, split, frequencies, on Dask's default (multiprocessing) scheduler.

Lines are decoded with ``surrogateescape`` so that bytes which are not UTF-8 survive, and
split as bytes: ``str.split()`` would also split at Unicode's other spaces (a no-break
space, U+0085, U+001C to U+001F), which ``bytes.split()``, the baseline's, does not.
"""

from __future__ import annotations

import os
import sys

import dask.bag as db


def main(path: str, output: str) -> None:
    lines = db.read_text(path, blocksize="64MiB", encoding="utf-8", errors="surrogateescape")
    counts = lines.map(_words).flatten().frequencies().compute(num_workers=os.cpu_count())
    with open(output, "wb") as out:
        for word, n in counts:
            out.write(word + b"\t%d\n" % n)


def _words(line: str) -> list[bytes]:
    return line.encode("utf-8", "surrogateescape").split()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
