"""Part files and their formats: the one writer both engines use, which is what makes a batch
run and a bounded stream run comparable byte for byte.

``text``: ``key<TAB>value`` lines (str and bytes as their bytes, ints in decimal, other values
as compact JSON); ``jsonl``: one ``{"key": ..., "value": ...}`` per line; ``parquet``: one key
type per output. A reducer's part is written with its lookup index (``mrkafka.io.index``)
when the run asks for one.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mrkafka.core import kernels
from mrkafka.core.json import text_bytes, to_json
from mrkafka.core.keys import from_key_bytes
from mrkafka.core.partial import (
    KEY,
    VALUE,
    Rows,
    concat_mixed,
    decode_values,
    empty_partial,
    holds_objects,
    key_kind,
)
from mrkafka.errors import JobFailedError, SetupError
from mrkafka.io import fs
from mrkafka.io.index import write_index

__all__ = ["WRITERS", "value_texts", "write_chunks", "write_part"]

_TEXT_CHUNK_ROWS = 1 << 20


def value_texts(part: pa.Table | Rows) -> pa.Array:
    """Each row's value as a text part writes it (what the lookup index shows too); 64-bit
    offsets, as a part's values may exceed 2 GiB."""
    if isinstance(part, pa.Table) and pa.types.is_integer(part.schema.field(VALUE).type):
        return pc.cast(part.column(VALUE), pa.string()).cast(pa.large_binary()).combine_chunks()
    return pa.array([text_bytes(v) for v in _rows(part).values], pa.large_binary())


def _write_text(part: pa.Table | Rows, f, texts: pa.Array) -> None:
    keys = part.column(KEY) if isinstance(part, pa.Table) else pa.array(part.keys, pa.binary())
    for start in range(0, len(keys), _TEXT_CHUNK_ROWS):
        f.write(kernels.text_lines(keys[start : start + _TEXT_CHUNK_ROWS], texts[start : start + _TEXT_CHUNK_ROWS]))


def _rows(part: pa.Table | Rows) -> Rows:
    return part if isinstance(part, Rows) else Rows.of(part)


def _write_jsonl(part: pa.Table | Rows, f, texts: pa.Array | None) -> None:
    rows = _rows(part)
    for key, value in zip(rows.keys, rows.values):
        key = from_key_bytes(key, rows.kind)
        try:
            f.write(to_json({"key": key, "value": value}, allow_nan=False) + b"\n")
        except ValueError as exc:  # NaN or an infinity
            raise JobFailedError(f"key {key!r}: {exc}; JSON lines cannot hold it (use --format text)") from exc


def _write_parquet(part: pa.Table | Rows, f, texts: pa.Array | None) -> None:
    table = part.table() if isinstance(part, Rows) else part
    if holds_objects(table):
        text = [to_json(v).decode("utf-8", "surrogateescape") for v in decode_values(table)]
        values = pa.array([t.encode("utf-8", "surrogateescape") for t in text], pa.binary())
        table = table.set_column(1, VALUE, values.cast(pa.string(), safe=False))
    kind = key_kind(table)
    if kind == "str":  # every part of an output has one key type, whatever its keys hold
        keys = [k.decode("utf-8", "replace") for k in table.column(KEY).to_pylist()]
        table = table.set_column(0, KEY, pa.array(keys, pa.string()))
    elif kind == "int":
        table = table.set_column(0, KEY, pc.cast(table.column(KEY).cast(pa.string()), pa.int64()))
    pq.write_table(table, f)


WRITERS = {"text": _write_text, "jsonl": _write_jsonl, "parquet": _write_parquet}


def write_part(part: pa.Table | Rows, path: str | Path, fmt: str = "text", index: bool = False) -> int:
    """Write a partial or its rows (already sorted) as one part file, and with ``index`` its
    lookup index (``mrkafka.io.index``); return the bytes written."""
    texts = value_texts(part) if fmt == "text" or index else None
    try:
        with fs.open_output(path) as f:
            WRITERS[fmt](part, f, texts)
            written = f.tell()
        if index:
            write_index(part, path, texts)
        return written
    except OSError as exc:  # a full disk, a lost mount
        raise SetupError(f"cannot write {path}: {fs.reason(exc)}") from exc


def write_chunks(chunks: Iterable[pa.Table | Rows], path: str | Path, fmt: str = "text", index: bool = False) -> int:
    """``write_part`` of the rows of ``chunks``, each sorted and after the one before: a part
    too big to hold whole (a reducer that spilled). Text and JSON lines are written a chunk at
    a time; Parquet (one row group, as ``write_part`` writes) and an index need every row at
    once, so the chunks are gathered as Arrow tables first (values in the partial's encoding:
    a fraction of what Python objects take)."""
    if fmt == "parquet" or index:
        tables = [chunk.table() if isinstance(chunk, Rows) else chunk for chunk in chunks if chunk.num_rows]
        return write_part(concat_mixed(tables) if tables else empty_partial(), path, fmt, index)
    try:
        with fs.open_output(path) as f:
            for chunk in chunks:
                WRITERS[fmt](chunk, f, value_texts(chunk) if fmt == "text" else None)
            return f.tell()
    except OSError as exc:
        raise SetupError(f"cannot write {path}: {fs.reason(exc)}") from exc
