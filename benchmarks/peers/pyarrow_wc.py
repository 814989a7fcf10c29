"""Single-process PyArrow: split whole chunks on ASCII whitespace, then value_counts."""

from __future__ import annotations

import sys

import pyarrow as pa
import pyarrow.compute as pc

CHUNK = 64 << 20


def main(path: str, output: str) -> None:
    partials = []
    with open(path, "rb") as f:
        rest = b""
        while True:
            data = f.read(CHUNK)
            chunk = rest + data
            cut = chunk.rfind(b"\n") + 1 if data else len(chunk)
            chunk, rest = chunk[:cut], chunk[cut:]
            if chunk:
                words = pc.ascii_split_whitespace(pa.array([chunk], pa.binary()).view(pa.string())).flatten()
                words = words.filter(pc.greater(pc.binary_length(words), 0))
                counts = pc.value_counts(words)
                partials.append(pa.table({"w": counts.field("values"), "n": counts.field("counts")}))
            if not data:
                break
    total = pa.concat_tables(partials).group_by("w").aggregate([("n", "sum")])
    with open(output, "wb") as out:
        for word, n in zip(total.column("w").cast(pa.binary()).to_pylist(), total.column("n_sum").to_pylist()):
            out.write(word + b"\t%d\n" % n)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
