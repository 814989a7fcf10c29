"""Dask bag: read_text, split, frequencies, on Dask's default (multiprocessing) scheduler.

Lines are decoded with ``surrogateescape`` so that bytes which are not UTF-8 survive.
"""

from __future__ import annotations

import os
import sys

import dask.bag as db


def main(path: str, output: str) -> None:
    lines = db.read_text(path, blocksize="64MiB", encoding="utf-8", errors="surrogateescape")
    counts = lines.str.split().flatten().frequencies().compute(num_workers=os.cpu_count())
    with open(output, "wb") as out:
        for word, n in counts:
            out.write(word.encode("utf-8", "surrogateescape") + b"\t%d\n" % n)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
