"""One meaning for a job's regular expression on both paths: Python's ``re`` on bytes.

Arrow's regex kernels use RE2, whose ``\\s`` lacks the vertical tab (``\\v``) that Python's
``\\s`` matches, so the vectorized and per-record forms of a job would split text differently.
``for_arrow`` rewrites ``\\s`` and ``\\S`` as RE2's POSIX class ``[:space:]`` (the six ASCII
whitespace bytes, as Python's), inside and outside character classes; every other construct
the two share means the same on bytes (``\\w``, ``\\d`` and ``\\b`` are ASCII in both).
"""

from __future__ import annotations

import re

__all__ = ["for_arrow"]

_OUTSIDE = {"s": "[[:space:]]", "S": "[[:^space:]]"}
_INSIDE = {"s": "[:space:]", "S": "[:^space:]"}


def for_arrow(pattern: str) -> str:
    """``pattern`` (checked with Python's ``re``: a bad one raises ``re.error``) for RE2."""
    re.compile(pattern.encode("utf-8", "surrogateescape"))
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            escaped = pattern[i + 1]
            out.append((_INSIDE if in_class else _OUTSIDE).get(escaped, char + escaped))
            i += 2
            continue
        if char == "[" and not in_class:
            in_class = True
            out.append(char)
            i += 1
            # A ']' first in a class (after an optional '^') is a literal.
            if pattern[i : i + 1] == "^":
                out.append("^")
                i += 1
            if pattern[i : i + 1] == "]":
                out.append("]")
                i += 1
            continue
        if char == "]" and in_class:
            in_class = False
        out.append(char)
        i += 1
    return "".join(out)
