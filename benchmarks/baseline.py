"""The program a user would write instead of mrkafka: word count in plain Python.

``python -m benchmarks.baseline INPUT OUTPUT`` counts and writes ``key<TAB>count`` lines
sorted by key bytes, the same form as mrkafka's part files.
"""

from __future__ import annotations

import collections
import sys


def main(path: str, output: str) -> None:
    counter: collections.Counter = collections.Counter()
    with open(path, "rb") as f:
        for line in f:
            counter.update(line.split())
    with open(output, "wb") as out:
        out.writelines(b"%s\t%d\n" % item for item in sorted(counter.items()))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
