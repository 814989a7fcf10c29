"""Ray Data: read_text, flat_map into words, groupby count. read_text needs UTF-8 input."""

from __future__ import annotations

import logging
import sys

import ray


def main(path: str, output: str) -> None:
    ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
    ds = ray.data.read_text(path)
    words = ds.flat_map(lambda row: [{"word": w} for w in row["text"].split()])
    with open(output, "wb") as out:
        for row in words.groupby("word").count().iter_rows():
            out.write(row["word"].encode() + b"\t%d\n" % row["count()"])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
