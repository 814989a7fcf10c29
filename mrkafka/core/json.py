"""Compact JSON of job values: the one encoder every writer uses (part files, topics, queries).

Text that is not UTF-8 (a str holding surrogate escapes) is written as ``\\udcXX`` escapes,
which read back to the same str; bytes are written as their text; sets as sorted lists.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring, encode_basestring_ascii
from typing import Any

__all__ = ["text_bytes", "to_json"]


def text_bytes(value: Any) -> bytes:
    """A value as a text part writes it: bytes as they are, a str as its bytes, anything else as compact JSON."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    # Text parts keep bytes as they are: a str's surrogate escapes go back to its bytes.
    return _encoder(ensure_ascii=False, allow_nan=True)(value).encode("utf-8", "surrogateescape")


def to_json(value: Any, allow_nan: bool = True) -> bytes:
    """Compact JSON of ``value``, UTF-8; text that is not UTF-8 (surrogate escapes) as ``\\udcXX``
    escapes, which read back to the same bytes. NaN and infinities, which JSON lacks, are written
    as JavaScript's names, or are a ValueError unless ``allow_nan``."""
    try:
        return _encoder(ensure_ascii=False, allow_nan=allow_nan)(value).encode("utf-8")
    except UnicodeEncodeError:
        return _encoder(ensure_ascii=True, allow_nan=allow_nan)(value).encode("ascii")


@functools.cache
def _encoder(ensure_ascii: bool, allow_nan: bool) -> Callable[[Any], str]:
    """Compact JSON, as ``json.dumps(value, separators=(",", ":"), ...)`` writes it.

    ``json.dumps`` with arguments builds an encoder per call, and ``JSONEncoder.encode`` its C
    encoder per call: a part calls this once per row, so the standard library's C encoder is
    made once, here, and called directly (3x faster per value on a prefix index's rows)."""
    if c_make_encoder is None:  # a Python built without the json accelerator
        return json.JSONEncoder(
            separators=(",", ":"), ensure_ascii=ensure_ascii, allow_nan=allow_nan, default=_json_default
        ).encode
    strings = encode_basestring_ascii if ensure_ascii else encode_basestring
    encode = c_make_encoder({}, _json_default, strings, None, ":", ",", False, False, allow_nan)
    return lambda value: "".join(encode(value, 0))


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable: {value!r}")
