"""A progress bar on stderr (done of total, MB/s) while stderr is a terminal."""

from __future__ import annotations

import sys
import time

import click

from mrkafka.core.report import rate

__all__ = ["Progress"]


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
