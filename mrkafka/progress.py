"""A progress line on stderr (done of total, MB/s) while stderr is a terminal, and how amounts read."""

from __future__ import annotations

import sys
import time

import click

__all__ = ["Progress", "amount", "rate"]


def amount(nbytes: float) -> str:
    """``3.2 MB``, ``512.0 KB`` or ``12 B``: decimal units, so that small inputs do not read 0.0 MB."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if nbytes >= size:
            return f"{nbytes / size:.1f} {unit}"
    return f"{nbytes:.0f} B"


def rate(nbytes: float, seconds: float) -> str:
    return f"{amount(nbytes / max(seconds, 1e-9))}/s"


class Progress:
    """Counts units (splits, records) and bytes; draws a bar only on a terminal."""

    def __init__(self, total: int, label: str, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.started = time.monotonic()
        self.bytes = 0
        self._bar = None
        if self.enabled and total:
            self._bar = click.progressbar(
                length=total, label=label, file=sys.stderr, item_show_func=self._rate, show_pos=True
            )
            self._bar.__enter__()

    def _rate(self, _item: object) -> str:
        return rate(self.bytes, time.monotonic() - self.started)

    def advance(self, units: int = 1, nbytes: int = 0) -> None:
        self.bytes += nbytes
        if self._bar is not None:
            self._bar.update(units, current_item=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
